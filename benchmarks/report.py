"""Markdown tables from the JSON reports in benchmarks/results (used to write RESULTS.md).

    python benchmarks/report.py benchmarks/results/allreduce-2ranks.json [...]
"""

from __future__ import annotations

import json
import sys

from mscomm.bench.cli import PEERS
from mscomm.bench.sizes import human


def table(path: str) -> str:
    report = json.load(open(path))
    res = {r["backend"]: r for r in report["results"]}
    ms = res["mscomm"]
    peers = [p for p in PEERS if p in res]
    head = "| size | mscomm us (min-max) | busbw GB/s | #wrong |"
    sep = "|---|---|---|---|"
    if "in_place" in ms:
        head += " in place us | algo |"
        sep += "---|---|"
    for p in peers:
        head += f" {p} us | {p} / mscomm |"
        sep += "---|---|"
    lines = [head, sep]
    for i, r in enumerate(ms["rows"]):
        line = (f"| {human(r['bytes'])} | {r['time_us']:.1f} ({r['time_us_min']:.1f}-{r['time_us_max']:.1f}) "
                f"| {r['busbw']:.2f} | {r['wrong']} |")
        if "in_place" in ms:
            line += f" {ms['in_place'][i]['time_us']:.1f} | {ms['algorithms'][str(r['bytes'])]} |"
        base = ms["in_place"][i] if "in_place" in ms else r  # the peers' allreduce runs in place
        for p in peers:
            pr = res[p]["rows"][i]
            line += " n/a | |" if "error" in pr else f" {pr['time_us']:.1f} | {pr['time_us'] / base['time_us']:.2f}x |"
        lines.append(line)
    libraries = [f"{p}: {res[p]['library']}" for p in peers if res[p].get("library")]
    notes = report.get("notes", [])
    if libraries or notes:
        lines.append("")
        lines += [f"- {x}" for x in libraries + notes]
    return "\n".join(lines)


if __name__ == "__main__":
    for path in sys.argv[1:]:
        print(f"`{path}`\n\n{table(path)}\n")
