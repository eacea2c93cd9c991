"""Run torch's own distributed test body, ``DistributedTest._DistTestBase``
(torch/testing/_internal/distributed/distributed_test.py), for one backend.

The upstream driver (test/distributed/test_distributed_spawn.py) is not in the torch wheel; this
is a small equivalent. It sets BACKEND, WORLD_SIZE and TEMP_DIR as upstream does, builds
``TestDistBackend + _DistTestBase`` and runs every test (or those matching ``-k``), each in
``WORLD_SIZE`` fresh processes. Upstream spawns them; this driver forks by default (``--spawn``
for upstream's way): a spawned rank re-imports torch, ~2 s per rank per test here.

``--backend mscomm``: the suite's gates (decorators such as ``skip_if_lt_x_gpu``, "Only gloo
backend supports timeouts", and the few ``if BACKEND == "gloo"`` branches inside test bodies)
are evaluated as for gloo, the CPU reference backend, while the default group, and every group a
test makes with ``backend=BACKEND``, is made with "mscomm". ``dist.get_backend()`` answers
"mscomm", so tests that compare backend names see the real one.

Output: one JSON line per test on stdout (``{"test", "outcome", "seconds", "detail"}``,
outcome one of pass / fail / skip), then a summary line. Usage::

    python tests/torch/dist_suite.py --backend mscomm [--world-size 2] [-k REGEX] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
import unittest


class _GatedAsGloo(str):
    """The backend name "mscomm" that compares (and hashes) as "gloo": the suite's runtime gates
    read it as gloo, while ``dist.Backend(BACKEND)`` (via ``.upper()``/``.lower()``, which return
    plain strings) and messages see "mscomm"."""

    def __eq__(self, other: object) -> bool:
        return other == "gloo"

    def __ne__(self, other: object) -> bool:
        return other != "gloo"

    def __hash__(self) -> int:
        return hash("gloo")


def load_suite(backend: str, world_size: int, temp_dir: str, spawn: bool):
    """The ``_DistTestBase`` test class for ``backend`` (environment set as upstream's driver)."""
    os.environ["BACKEND"] = "gloo" if backend != "nccl" else backend  # gates as for the CPU reference
    os.environ["WORLD_SIZE"] = str(world_size)
    os.environ["TEMP_DIR"] = temp_dir
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    if "MASTER_PORT" not in os.environ:  # a free one: two runs at once must not share it
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            os.environ["MASTER_PORT"] = str(sock.getsockname()[1])
    import torch.multiprocessing
    import torch.testing._internal.distributed.distributed_test as dt

    if backend != "gloo":
        import mscomm.torch  # noqa: F401 - registers the backend

        dt.BACKEND = _GatedAsGloo(backend) if backend == "mscomm" else backend

    class TestDistBackendWithSpawn(dt.TestDistBackend, dt.DistributedTest._DistTestBase):
        def setUp(self):
            super().setUp()
            if spawn:
                self._spawn_processes()
            else:
                self._start_processes(torch.multiprocessing.get_context("fork").Process)

    TestDistBackendWithSpawn.__module__ = "dist_suite"
    return TestDistBackendWithSpawn


class _Recorder(unittest.TestResult):
    def __init__(self, out, json_out) -> None:
        super().__init__()
        self.out, self.json_out = out, json_out
        self.rows: list[dict] = []
        self._t0 = 0.0

    def startTest(self, test):  # noqa: N802 - unittest's name
        super().startTest(test)
        self._t0 = time.monotonic()

    def _row(self, test, outcome, detail=""):
        name = test.id().split(".")[-1]
        row = {"test": name, "outcome": outcome, "seconds": round(time.monotonic() - self._t0, 2),
               "detail": detail[-4000:]}
        self.rows.append(row)
        print(json.dumps(row), file=self.out, flush=True)

    def addSuccess(self, test):  # noqa: N802
        super().addSuccess(test)
        self._row(test, "pass")

    def addFailure(self, test, err):  # noqa: N802
        super().addFailure(test, err)
        self._row(test, "fail", self._exc_info_to_string(err, test))

    def addError(self, test, err):  # noqa: N802
        super().addError(test, err)
        self._row(test, "fail", self._exc_info_to_string(err, test))

    def addSkip(self, test, reason):  # noqa: N802
        super().addSkip(test, reason)
        self._row(test, "skip", str(reason))

    def addExpectedFailure(self, test, err):  # noqa: N802
        super().addExpectedFailure(test, err)
        self._row(test, "pass", "expected failure")

    def addUnexpectedSuccess(self, test):  # noqa: N802
        super().addUnexpectedSuccess(test)
        self._row(test, "fail", "unexpected success")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", default="mscomm")
    ap.add_argument("--world-size", type=int, default=2)
    ap.add_argument("-k", "--select", default=None, help="regex on test names (re.search)")
    ap.add_argument("--exclude", default=None, help="regex on test names to leave out")
    ap.add_argument("--spawn", action="store_true", help="spawn ranks (upstream's way) instead of forking")
    ap.add_argument("--timeout", type=int, default=120, help="per-test limit in seconds (upstream: 300)")
    ap.add_argument("--list", action="store_true", help="print the selected test names and exit")
    ap.add_argument("--json", default=None, help="write all rows to this file")
    args = ap.parse_args(argv)

    os.environ["DISTRIBUTED_TESTS_DEFAULT_TIMEOUT"] = str(args.timeout)  # read at import
    with tempfile.TemporaryDirectory(prefix=f"dist_suite_{args.backend}_") as temp_dir:
        cls = load_suite(args.backend, args.world_size, temp_dir, args.spawn)
        names = sorted(unittest.TestLoader().getTestCaseNames(cls))
        if args.select:
            names = [n for n in names if re.search(args.select, n)]
        if args.exclude:
            names = [n for n in names if not re.search(args.exclude, n)]
        if args.list:
            print("\n".join(names))
            return 0
        result = _Recorder(sys.stdout, args.json)
        t0 = time.monotonic()
        unittest.TestSuite([cls(n) for n in names]).run(result)
        counts = {k: sum(r["outcome"] == k for r in result.rows) for k in ("pass", "fail", "skip")}
        summary = {"summary": args.backend, "world_size": args.world_size, **counts,
                   "seconds": round(time.monotonic() - t0, 1)}
        print(json.dumps(summary), flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"summary": summary, "rows": result.rows}, f, indent=1)
    return 0 if counts["fail"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
