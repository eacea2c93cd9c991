"""``python -m mscomm.envdoc > docs/environment.md``: the environment page, from the registry."""

from mscomm.env import markdown

if __name__ == "__main__":
    print(markdown(), end="")
