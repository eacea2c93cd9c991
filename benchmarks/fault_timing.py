"""Failure detection time on real processes: how long after a rank is killed (SIGKILL) or frozen
(SIGSTOP) every surviving rank gets its error, while all ranks loop over 1 MB allreduces.

For each transport (shm, tcp) and rank count (2, 4), the last rank is the victim (rank 0 hosts
the bootstrap, whose death is a different path, covered by tests/test_faults.py). Detection time
is measured from the moment the driver sends the signal to the latest survivor's exception
(``time.time()`` is shared by processes on one host). SIGKILL must give PeerFailure on every
survivor; SIGSTOP must give Timeout with the communicator timeout of 2 s. After every run the
job's /dev/shm entries are counted before anything is swept.

``python benchmarks/fault_timing.py [--runs 5]`` prints a table (median / max over runs) and writes
benchmarks/results/reliability-faults.json.

``--propagation`` measures instead how fast a rank that leaves or fails on its own reaches every
other rank (the cases of tests/test_failure_propagation.py): ``exit0`` (sys.exit(0) mid-job),
``raise`` (uncaught exception), ``kill9``, ``timeout`` (its own collective times out after
0.5 s because rank 0 is 2 s late) and ``argerror`` (an argument only it gets wrong); the last rank
is the victim. Time is from the victim's fault (or, for a survivor that enters the collective
later, from its entry) to the survivor's exception; writes
benchmarks/results/reliability-propagation.json.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))

from mscomm.launcher import job_environment, new_job, sweep_shm  # noqa: E402

MARK = "@@fault@@ "
STOP_TIMEOUT_S = 2.0

RANK_SCRIPT = f'''
import json, os, sys, time
import numpy as np
import mscomm
rank = int(os.environ["MSCOMM_RANK"])
comm = mscomm.init(timeout=float(sys.argv[1]))
x = np.ones(1 << 18, np.float32)   # 1 MB
mscomm.allreduce(x)
open(sys.argv[2] + f"/ready-{{rank}}", "w").close()
calls = 0
try:
    while True:
        mscomm.allreduce(x)
        calls += 1
except Exception as e:
    print({MARK!r} + json.dumps({{"error": type(e).__name__, "at": time.time(), "calls": calls,
                                  "message": str(e)[:300]}}), flush=True)
'''


def one_run(nranks: int, transport: str, fault: str, script: str) -> dict:
    unique_id, job_tag = new_job()
    ready = tempfile.mkdtemp(prefix="mscomm-fault-")
    extra = {"MSCOMM_SHUTDOWN_TIMEOUT": "3", "MSCOMM_BOOTSTRAP_TIMEOUT": "30"}
    if transport == "tcp":
        extra["MSCOMM_FORCE_TCP"] = "1"
    timeout = STOP_TIMEOUT_S if fault == "sigstop" else 60.0
    procs = [subprocess.Popen([sys.executable, script, str(timeout), ready],
                              env=job_environment(r, nranks, unique_id, job_tag, extra),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
             for r in range(nranks)]
    victim = nranks - 1
    result: dict = {"nranks": nranks, "transport": transport, "fault": fault}
    try:
        deadline = time.monotonic() + 60
        while len(glob.glob(f"{ready}/ready-*")) < nranks:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError("ranks did not reach the allreduce loop")
            time.sleep(0.02)
        time.sleep(0.3)                       # well inside the loop
        sent = time.time()
        os.kill(procs[victim].pid, signal.SIGKILL if fault == "sigkill" else signal.SIGSTOP)
        errors = []
        for r, p in enumerate(procs):
            if r == victim:
                continue
            try:
                so, se = p.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                errors.append({"rank": r, "error": "hung"})
                continue
            lines = [json.loads(line[len(MARK):]) for line in so.splitlines() if line.startswith(MARK)]
            errors.append({"rank": r, **(lines[0] if lines else {"error": f"exit {p.returncode}", "stderr": se[-500:]})})
        if fault == "sigstop":
            os.kill(procs[victim].pid, signal.SIGKILL)
        procs[victim].wait(timeout=10)
        expected = "PeerFailure" if fault == "sigkill" else "Timeout"
        result["survivor_errors"] = sorted({e["error"] for e in errors})
        result["all_expected"] = all(e["error"] == expected for e in errors)
        result["detect_s"] = max(e["at"] - sent for e in errors) if all("at" in e for e in errors) else None
        result["first_detect_s"] = min(e["at"] - sent for e in errors) if all("at" in e for e in errors) else None
        time.sleep(0.2)
        result["shm_leftovers"] = len(glob.glob(f"/dev/shm/mscomm-{job_tag}-*"))
        if not result["all_expected"]:
            result["messages"] = errors
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        sweep_shm(job_tag)
        for f in glob.glob(f"{ready}/*"):
            os.unlink(f)
        os.rmdir(ready)
    return result


PROPAGATION_SCRIPT = f'''
import json, os, signal, sys, time
import numpy as np
import mscomm
def emit(obj):
    print({MARK!r} + json.dumps(obj), flush=True)
fault, victim = sys.argv[1], int(sys.argv[2])
rank = int(os.environ["MSCOMM_RANK"])
comm = mscomm.init(timeout=60)
x = np.ones(1 << 18, np.float32)   # 1 MB
for _ in range(3):
    mscomm.allreduce(x)
comm.bootstrap.barrier(60)
comm.bootstrap.barrier(60)
if rank == victim:
    if fault == "timeout":
        try:
            mscomm.allreduce(x, timeout=0.5)
        finally:
            emit({{"fault_at": time.time()}})
    else:
        mscomm.allreduce(x)
        emit({{"fault_at": time.time()}})
        if fault == "exit0":
            sys.exit(0)
        if fault == "raise":
            raise RuntimeError("boom")
        if fault == "kill9":
            os.kill(os.getpid(), signal.SIGKILL)
        if fault == "argerror":
            mscomm.allreduce(x, algorithm="no-such-algorithm")
if fault == "timeout" and rank == 0:
    time.sleep(2.0)
entered = time.time()
try:
    while True:
        mscomm.allreduce(x)
except Exception as e:
    emit({{"error": type(e).__name__, "at": time.time(), "entered": entered, "message": str(e)[:300]}})
'''
PROPAGATION_FAULTS = ("exit0", "raise", "kill9", "timeout", "argerror")


def propagation_run(nranks: int, transport: str, fault: str, script: str) -> dict:
    unique_id, job_tag = new_job()
    extra = {"MSCOMM_SHUTDOWN_TIMEOUT": "30", "MSCOMM_BOOTSTRAP_TIMEOUT": "30",
             "PYTHONPATH": os.pathsep.join(filter(None, [os.path.join(HERE, "..", "python"),
                                                         os.environ.get("PYTHONPATH")]))}
    if transport == "tcp":
        extra["MSCOMM_FORCE_TCP"] = "1"
    victim = nranks - 1
    procs = [subprocess.Popen([sys.executable, script, fault, str(victim)],
                              env=job_environment(r, nranks, unique_id, job_tag, extra),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
             for r in range(nranks)]
    result: dict = {"nranks": nranks, "transport": transport, "fault": fault}
    try:
        outs = []
        for p in procs:
            try:
                so, _ = p.communicate(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                so, _ = p.communicate()
            outs.append([json.loads(ln[len(MARK):]) for ln in so.splitlines() if ln.startswith(MARK)])
        marks = [o for o in outs[victim] if "fault_at" in o]
        errors = [next((o for o in outs[r] if "error" in o), {"error": "none"}) for r in range(nranks) if r != victim]
        result["survivor_errors"] = sorted({e["error"] for e in errors})
        if marks and all("at" in e for e in errors):
            fault_at = marks[0]["fault_at"]
            result["detect_s"] = max(e["at"] - max(fault_at, e["entered"]) for e in errors)
        result["messages"] = sorted({e.get("message", "")[:160] for e in errors})
        time.sleep(0.2)
        result["shm_leftovers"] = len(glob.glob(f"/dev/shm/mscomm-{job_tag}-*"))
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        sweep_shm(job_tag)
    return result


def propagation_main(args: argparse.Namespace) -> int:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(PROPAGATION_SCRIPT)
        script = f.name
    rows, runs, status = [], [], 0
    try:
        for fault in PROPAGATION_FAULTS:
            for transport in ("shm", "tcp"):
                for nranks in (2, 4):
                    batch = [propagation_run(nranks, transport, fault, script) for _ in range(args.runs)]
                    runs.extend(batch)
                    times = [r["detect_s"] for r in batch if r.get("detect_s") is not None]
                    row = {"fault": fault, "transport": transport, "nranks": nranks, "runs": len(batch),
                           "errors": sorted({e for r in batch for e in r.get("survivor_errors", [])}),
                           "median_s": statistics.median(times) if times else float("nan"),
                           "max_s": max(times) if times else float("nan"),
                           "shm_leftovers": sum(r.get("shm_leftovers", 0) for r in batch)}
                    rows.append(row)
                    if len(times) != len(batch) or row["shm_leftovers"] or row["max_s"] > 5:
                        status = 1
                    print(f"{fault:8} {transport:4} {nranks} ranks: median {row['median_s']:.3f} s, "
                          f"max {row['max_s']:.3f} s, errors {row['errors']}", flush=True)
    finally:
        os.unlink(script)
    print()
    print(f"{'fault':8} {'transport':9} {'ranks':>5} {'median s':>9} {'max s':>7} {'survivors raised':>18} {'/dev/shm left':>13}")
    for row in rows:
        print(f"{row['fault']:8} {row['transport']:9} {row['nranks']:>5} {row['median_s']:>9.3f} {row['max_s']:>7.3f} "
              f"{','.join(row['errors']):>18} {row['shm_leftovers']:>13}")
    out = args.out or os.path.join(HERE, "results", "reliability-propagation.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump({"what": "seconds from a victim's fault (or a late survivor's entry) to the last survivor's "
                           "exception, survivors looping over 1 MB allreduces", "summary": rows, "runs": runs},
                  f, indent=1)
    print(f"wrote {out}; RESULT: {'PASS' if status == 0 else 'FAIL'}")
    return status


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", default=None)
    ap.add_argument("--propagation", action="store_true",
                    help="measure how fast a rank that leaves or fails on its own is reported (see above)")
    args = ap.parse_args()
    if args.propagation:
        return propagation_main(args)
    args.out = args.out or os.path.join(HERE, "results", "reliability-faults.json")
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(RANK_SCRIPT)
        script = f.name
    rows, runs = [], []
    status = 0
    try:
        for fault in ("sigkill", "sigstop"):
            for transport in ("shm", "tcp"):
                for nranks in (2, 4):
                    batch = [one_run(nranks, transport, fault, script) for _ in range(args.runs)]
                    runs.extend(batch)
                    times = [r["detect_s"] for r in batch if r.get("detect_s") is not None]
                    row = {"fault": fault, "transport": transport, "nranks": nranks, "runs": len(batch),
                           "all_expected": all(r.get("all_expected") for r in batch),
                           "errors": sorted({e for r in batch for e in r.get("survivor_errors", [])}),
                           "median_s": statistics.median(times) if times else None,
                           "max_s": max(times) if times else None,
                           "shm_leftovers": sum(r.get("shm_leftovers", 0) for r in batch)}
                    rows.append(row)
                    if not row["all_expected"] or row["shm_leftovers"] or len(times) != len(batch):
                        status = 1
                    print(f"{fault:8} {transport:4} {nranks} ranks: median {row['median_s']:.3f} s, "
                          f"max {row['max_s']:.3f} s, errors {row['errors']}, shm leftovers {row['shm_leftovers']}",
                          flush=True)
    finally:
        os.unlink(script)
    print()
    print(f"{'fault':8} {'transport':9} {'ranks':>5} {'median s':>9} {'max s':>7} {'survivors raised':>18} {'/dev/shm left':>13}")
    for row in rows:
        print(f"{row['fault']:8} {row['transport']:9} {row['nranks']:>5} {row['median_s']:>9.3f} {row['max_s']:>7.3f} "
              f"{','.join(row['errors']):>18} {row['shm_leftovers']:>13}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"what": "seconds from the signal to the last survivor's exception, during 1 MB allreduce loops; "
                           f"SIGSTOP runs use a communicator timeout of {STOP_TIMEOUT_S} s",
                   "summary": rows, "runs": runs}, f, indent=1)
    print(f"wrote {args.out}; RESULT: {'PASS' if status == 0 else 'FAIL'}")
    return status


if __name__ == "__main__":
    sys.exit(main())
