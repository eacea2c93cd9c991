import os
import sys

from mscomm.sigma.cli import child_exit, main
from mscomm.sigma.launch import CHILD_ENV

code = main()
if os.environ.get(CHILD_ENV) == "1":
    child_exit(code)
sys.exit(code)
