"""The Sigma trainer as a benchmark: tokens/s and communication seconds per step, mscomm against
gloo, at 2 and 4 ranks, the same job (default model, EP over all ranks, bucketed gradient sync).

    PYTHONPATH=python python benchmarks/sigma_bench.py [--steps 60] [--out benchmarks/results/sigma]

Prints a markdown table (means over the steps after the first 3) and keeps each run's
summary.json/png under --out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--ranks", default="2,4")
    p.add_argument("--backends", default="mscomm,gloo")
    p.add_argument("--out", default="benchmarks/results/sigma")
    p.add_argument("extra", nargs="*", help="more trainer arguments")
    a = p.parse_args()
    rows = []
    for ranks in map(int, a.ranks.split(",")):
        for backend in a.backends.split(","):
            out = os.path.join(a.out, f"{backend}-{ranks}ranks")
            cmd = [sys.executable, "-m", "mscomm.sigma", "--ranks", str(ranks), "--ep", str(ranks), "--backend", backend,
                   "--steps", str(a.steps), "--val-every", "0", "--no-progress", "--out", out, *a.extra]
            print("+", " ".join(cmd), file=sys.stderr, flush=True)
            subprocess.run(cmd, check=True)
            with open(os.path.join(out, "summary.json")) as f:
                s = json.load(f)
            m = s["mean"]
            rows.append((backend, ranks, m["tokens_per_s"], m["comm_s_per_step"] * 1e3, m["step_s"] * 1e3,
                         m["comm_share"], s["val"][-1]["loss"]))
    print("| backend | ranks (EP) | tokens/s | comm ms/step | step ms | comm share | final val loss |")
    print("|---|---|---|---|---|---|---|")
    for b, r, tps, comm, step, share, val in rows:
        print(f"| {b} | {r} | {tps:,.0f} | {comm:.1f} | {step:.1f} | {share:.0%} | {val:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
