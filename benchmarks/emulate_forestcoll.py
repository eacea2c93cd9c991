"""ForestColl against ring on an emulated heterogeneous fabric (issue 14; needs root).

Usage (as root, on a quiet machine)::

    PYTHONPATH=python python benchmarks/emulate_forestcoll.py [--topology emu-2tier4x2] [--scale 0.002]
        [--min 64K] [--max 16M] [--reps 5] [--out benchmarks/results]

Steps: write the ForestColl allreduce plan (``mscomm-plan``) and the ring plan (``mscomm-plan
--ring``) for the topology; start one emulated job (``mscomm-run --emulate``) whose ranks first
measure every host pair's rate with mscomm's TCP transport, then time ``mscomm.allreduce`` with the
ForestColl plan (run by the executor), the ring plan, the automatic choice (hier/ring) and the
built-in ring (no executor), size by size in the same run. A variant that cannot run (no plan, an
executor that refuses it) is reported as an error row and the others go on. Writes
``emulate-forestcoll-<topology>.{json,md,png}``: algbw against size with the theoretical optimum
at the emulated rates (ForestColl's N·x*/2 and the ring's).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ("forestcoll", "ring", "auto", "builtin-ring")  # builtin-ring: algorithm="ring", no executor


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(float(text[:-1]) * units[text[-1].upper()]) if text[-1].upper() in units else int(text)


def sizes(lo: int, hi: int, factor: int = 4) -> list[int]:
    out, s = [], lo
    while s <= hi:
        out.append(s)
        s *= factor
    return out


# -- inside the emulated job (one process per rank) -------------------------------------------

def worker(args: argparse.Namespace) -> int:
    import mscomm
    from mscomm.emulate.linkrate import measure
    from mscomm.emulate.runner import load_fabric

    fabric = load_fabric(args.topology, args.scale)
    comm = mscomm.init()
    rates = measure(comm, fabric, 4 << 20, 4)
    plans = {"forestcoll": args.plan or None, "ring": args.ring_plan or None}
    expected_rate = args.expected  # bytes/s of the optimum: sets iterations per repetition
    rows = []
    for nbytes in sizes(parse_size(args.min), parse_size(args.max)):
        count = nbytes // 4
        x = np.full(count, comm.rank + 1, np.float32)
        out = np.empty_like(x)  # out of place: x keeps its values for every variant's check
        iters = max(1, min(50, int(0.3 * expected_rate / nbytes)))
        for name in VARIANTS:
            kw = {"auto": {}, "builtin-ring": {"algorithm": "ring"}}.get(name, {"plan": plans.get(name)})
            try:
                if "plan" in kw and plans[name] is None:
                    raise FileNotFoundError(f"no {name} plan (mscomm-plan failed; see the driver's output)")
                mscomm.allreduce(x, out=out, **kw)
                ok = bool(np.all(out == comm.size * (comm.size + 1) / 2))
                times = []
                for _ in range(args.reps):
                    mscomm.barrier()
                    t0 = time.perf_counter()
                    for _ in range(iters):
                        mscomm.allreduce(x, out=out, **kw)
                    t = np.array([(time.perf_counter() - t0) / iters])
                    mscomm.allreduce(t, "max")
                    times.append(float(t[0]))
                med = float(np.median(times))
                rows.append({"variant": name, "bytes": nbytes, "iters": iters, "seconds": med,
                             "algbw_MBps": nbytes / med / 1e6, "correct": ok})
            except Exception as exc:  # noqa: BLE001 - report and go on with the other variants
                rows.append({"variant": name, "bytes": nbytes, "error": f"{type(exc).__name__}: {exc}"})
            if comm.rank == 0:
                print(json.dumps(rows[-1]), flush=True)
    if comm.rank == 0:
        Path(args.worker_out).write_text(json.dumps({"link_rates": rates, "rows": rows}, indent=1))
    mscomm.finalize()
    return 0


# -- the driver --------------------------------------------------------------------------------

def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO / "python") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    print("$", " ".join(cmd), file=sys.stderr, flush=True)
    return subprocess.run(cmd, env=env, check=True, **kw)


def driver(args: argparse.Namespace) -> int:
    from mscomm.emulate import check_environment, load_fabric
    from mscomm.forestcoll import generate
    from mscomm.forestcoll.ring import ring_throughput

    check_environment()
    fabric = load_fabric(args.topology, args.scale)
    topo = fabric.topology
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"emulate-forestcoll-{topo.name}"
    plan, ring_plan = f"{stem}.plan.json", f"{stem}.ring-plan.json"
    for path, extra in ((plan, ["--no-ring"]), (ring_plan, ["--ring"])):
        try:
            run([sys.executable, "-m", "mscomm.forestcoll.cli", args.topology, "-c", "allreduce", "-o", path, *extra],
                stdout=subprocess.DEVNULL)
        except subprocess.CalledProcessError:
            print(f"emulate_forestcoll: could not write {path}; that variant is reported as an error", file=sys.stderr)
            if os.path.exists(path):
                os.unlink(path)
    schedule = generate(topo)
    n = topo.num_ranks
    optimum = {"forestcoll": float(schedule.algbw("allreduce")) * 1e9 * args.scale,
               "ring": float(n * ring_throughput(topo).x / 2) * 1e9 * args.scale}
    worker_out = f"{stem}.worker.json"
    run([sys.executable, "-m", "mscomm.launcher", "--emulate", args.topology, "--scale", str(args.scale),
         "--timeout", str(args.timeout), "--", sys.executable, __file__, "--worker", "--topology", args.topology,
         "--scale", str(args.scale), "--plan", plan if os.path.exists(plan) else "",
         "--ring-plan", ring_plan if os.path.exists(ring_plan) else "", "--min", args.min, "--max", args.max,
         "--reps", str(args.reps), "--expected", str(optimum["forestcoll"]), "--worker-out", worker_out])
    measured = json.loads(Path(worker_out).read_text())
    os.unlink(worker_out)
    report = {"topology": topo.name, "description": topo.description, "scale": args.scale,
              "command": " ".join(sys.argv), "optimum_algbw_MBps": {k: v / 1e6 for k, v in optimum.items()},
              "x_star_gbps": float(schedule.x_star), "k": schedule.k, **measured}
    Path(f"{stem}.json").write_text(json.dumps(report, indent=1))
    Path(f"{stem}.md").write_text(markdown(report))
    print(markdown(report))
    plot(report, f"{stem}.png")
    return 0


def markdown(report: dict) -> str:
    opt = report["optimum_algbw_MBps"]
    lines = [f"### {report['topology']} at scale {report['scale']:g} ({report['description']})", "",
             f"Theoretical allreduce algbw at the emulated rates: ForestColl {opt['forestcoll']:.1f} MB/s, "
             f"ring {opt['ring']:.1f} MB/s.", "",
             "| bytes | forestcoll plan MB/s | ring plan MB/s | auto MB/s | built-in ring MB/s | forestcoll / ring "
             "| forestcoll / optimum |",
             "|---|---|---|---|---|---|---|"]
    by = {(r["variant"], r["bytes"]): r for r in report["rows"]}
    for nbytes in sorted({r["bytes"] for r in report["rows"]}):
        cell = {v: by.get((v, nbytes), {}).get("algbw_MBps") for v in VARIANTS}
        fmt = {v: f"{c:.1f}" if c else "error" for v, c in cell.items()}
        ratio = f"{cell['forestcoll'] / cell['ring']:.2f}" if cell["forestcoll"] and cell["ring"] else "-"
        frac = f"{cell['forestcoll'] / opt['forestcoll']:.2f}" if cell["forestcoll"] else "-"
        lines.append(f"| {nbytes} | {fmt['forestcoll']} | {fmt['ring']} | {fmt['auto']} | {fmt['builtin-ring']} "
                     f"| {ratio} | {frac} |")
    errors = sorted({f"{r['variant']}: {r['error']}" for r in report["rows"] if "error" in r})
    if errors:
        lines += [""] + [f"- error: {e}" for e in errors]
    lines += ["", "Measured link rates (mscomm send/recv, one host pair at a time):", "",
              "| src host | dst host | nominal GB/s | shaped MB/s | measured MB/s | measured / shaped |",
              "|---|---|---|---|---|---|"]
    for r in report["link_rates"]:
        lines.append(f"| {r['src_host']} | {r['dst_host']} | {r['nominal_gbps']:g} | {r['shaped_MBps']:.1f} | "
                     f"{r['measured_MBps']:.1f} | {r['measured_over_shaped']:.2f} |")
    return "\n".join(lines) + "\n"


def plot(report: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for variant, style, color in zip(VARIANTS, ("o-", "s-", "^--", "v:"), ("C0", "C1", "C2", "C3")):
        pts = sorted((r["bytes"], r["algbw_MBps"]) for r in report["rows"] if r["variant"] == variant and "algbw_MBps" in r)
        if pts:
            ax.plot(*zip(*pts), style, color=color, label={"auto": "automatic (hier/ring)", "builtin-ring": "built-in ring"}.get(
                variant, f"{variant} plan (executor)"))
    for name, color in (("forestcoll", "C0"), ("ring", "C1")):
        ax.axhline(report["optimum_algbw_MBps"][name], color=color, ls=":", label=f"{name} optimum (emulated rates)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("allreduce size (bytes)")
    ax.set_ylabel("algbw (MB/s)")
    ax.set_title(f"{report['topology']} emulated at scale {report['scale']:g}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--topology", default="emu-2tier4x2", help="emulated topology (file or zoo name)")
    p.add_argument("--scale", type=float, default=0.002, help="link rate = bandwidth x scale (default 0.002)")
    p.add_argument("--min", default="64K")
    p.add_argument("--max", default="16M")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--plan", help=argparse.SUPPRESS)
    p.add_argument("--ring-plan", help=argparse.SUPPRESS)
    p.add_argument("--expected", type=float, default=25e6, help=argparse.SUPPRESS)
    p.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = p.parse_args()
    return worker(args) if args.worker else driver(args)


if __name__ == "__main__":
    sys.exit(main())
