"""Every collective through torch.distributed on mscomm and on gloo, same inputs, same results
(see crosscheck.py), at 2, 3 and 4 ranks: one job per world size runs every check."""

from __future__ import annotations

import pytest

from torch_common import run_torch_job


@pytest.mark.parametrize("nranks", [2, 3, 4], ids=lambda n: f"{n}ranks")
def test_every_collective_matches_gloo(nranks):
    job = run_torch_job(nranks, '''
        import crosscheck
        init("gloo")
        ms = dist.new_group(backend="mscomm")
        gloo = dist.new_group(backend="gloo")
        failures, checks = crosscheck.run_all(RANK, SIZE, ms, gloo)
        dist.destroy_process_group()
        emit({"failures": failures, "checks": checks})
    ''', timeout=240)
    job.check_ok()
    for r in range(nranks):
        (result,) = job.results(r)
        assert result["failures"] == [], f"rank {r}: " + "\n".join(result["failures"][:30])
        assert result["checks"] > 300
