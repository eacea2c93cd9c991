"""One calling convention for every collective: data first, ``out=`` keyword, the output allocated
(of the input's kind and shape rules) and returned when omitted; calls in the old output-first
order fail loudly instead of moving the wrong buffer."""

from __future__ import annotations

import numpy as np
import pytest

import mscomm
from harness import run_job


@pytest.fixture
def solo():
    comm = mscomm.Communicator(0, 1, mscomm.create_unique_id(), timeout=10)
    yield comm
    comm.close()


def test_convention_allocates_numpy_outputs_with_documented_shapes(solo):
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    for name, shape in [("allgather", (6, 2)), ("reduce_scatter", (6, 2)), ("alltoall", (6, 2)), ("gather", (6, 2)),
                        ("scatter", (6, 2))]:
        got = getattr(solo, name)(x)
        assert isinstance(got, np.ndarray) and got.shape == shape and got.dtype == x.dtype, (name, got.shape)
        assert got is not x and np.array_equal(got, x), name
    flat = solo.alltoallv(np.arange(5, dtype=np.int64), [5])
    assert flat.tolist() == [0, 1, 2, 3, 4]


def test_convention_allocates_torch_outputs():
    torch = pytest.importorskip("torch")
    comm = mscomm.Communicator(0, 1, mscomm.create_unique_id(), timeout=10)
    try:
        x = torch.arange(8, dtype=torch.bfloat16)
        for name in ("allgather", "reduce_scatter", "alltoall", "gather", "scatter"):
            got = getattr(comm, name)(x)
            assert isinstance(got, torch.Tensor) and got.dtype == torch.bfloat16 and torch.equal(got, x), name
    finally:
        comm.close()


def test_convention_out_is_returned_and_written(solo):
    x = np.arange(4, dtype=np.int32)
    out = np.zeros(4, np.int32)
    assert solo.allgather(x, out=out) is out and out.tolist() == [0, 1, 2, 3]
    assert solo.alltoall(x, out=out) is out


@pytest.mark.parametrize("call, words", [
    (lambda c, a, b: c.allgather(a, b), "allgather(x, out=y)"),
    (lambda c, a, b: c.alltoall(a, b), "alltoall(x, out=y)"),
    (lambda c, a, b: c.reduce_scatter(a, b), "reduce_scatter(x, op, out=y)"),
    (lambda c, a, b: c.gather(a, b), "gather(x, root, out=y)"),
    (lambda c, a, b: c.scatter(a, b), "scatter(x, root, out=y)"),
    (lambda c, a, b: mscomm.reduce(a, b, comm=c), "reduce(x, root, out=y)"),
    (lambda c, a, b: mscomm.broadcast(a, b, comm=c), "broadcast: root must be a rank (an int), got ndarray"),
    (lambda c, a, b: c.alltoallv(a, b, [4]), "alltoallv: send_counts must hold integer element counts"),
], ids=["allgather", "alltoall", "reduce_scatter", "gather", "scatter", "reduce", "broadcast", "alltoallv"])
def test_convention_old_output_first_calls_fail_loudly(solo, call, words):
    out, x = np.zeros(4, np.float32), np.ones(4, np.float32)
    with pytest.raises(mscomm.InvalidArgument) as e:
        call(solo, out, x)
    assert words in str(e.value), str(e.value)
    assert out.tolist() == [0, 0, 0, 0], "nothing may be written on a refused call"


def test_convention_scatter_non_root_needs_out():
    job = run_job(2, r'''
comm = mscomm.init(timeout=20)
try:
    comm.scatter(np.arange(4.0) if RANK == 0 else None, 0)
    emit({"error": None})
except mscomm.InvalidArgument as e:
    emit({"error": str(e)})
''', timeout=60)
    # rank 1 refuses locally before any data moves; rank 0 then waits for it and times out or fails
    msg = job.results(1)[0]["error"]
    assert msg and "must pass out=" in msg, msg


CONVENTION = r'''
import torch
comm = mscomm.init(timeout=30)
N, me = comm.size, comm.rank
res = {}
for kind in ("numpy", "torch"):
    mk = (lambda a: a) if kind == "numpy" else torch.from_numpy
    x = mk(np.arange(2 * N * 3, dtype=np.float32).reshape(2 * N, 3) + 100 * me)
    g = comm.allgather(x)
    rs = comm.reduce_scatter(x)
    a2a = comm.alltoall(x)
    ga = comm.gather(x, 1)
    sc = comm.scatter(x if me == 1 else None, 1, out=None if me == 1 else mk(np.empty((2, 3), np.float32)))
    v = comm.alltoallv(mk(np.arange(N, dtype=np.int64) + 10 * me), [1] * N)
    res[kind] = {"types": sorted({type(t).__module__.split(".")[0] for t in (g, rs, a2a, sc, v)}),
                 "g": np.asarray(g).tolist(), "rs": np.asarray(rs).tolist(), "a2a": np.asarray(a2a).tolist(),
                 "ga": None if ga is None else np.asarray(ga).tolist(), "sc": np.asarray(sc).tolist(),
                 "v": np.asarray(v).tolist()}
emit(res)
'''


@pytest.mark.parametrize("nranks", [2, 3], ids=lambda n: f"{n}ranks")
def test_convention_allocated_results_match_numpy(nranks):
    pytest.importorskip("torch")
    job = run_job(nranks, CONVENTION, timeout=90).check_ok()
    base = np.arange(2 * nranks * 3, dtype=np.float32).reshape(2 * nranks, 3)
    xs = [base + 100 * r for r in range(nranks)]
    for r in range(nranks):
        for kind, got in job.results(r)[0].items():
            assert got["types"] == [kind], got["types"]
            assert np.array_equal(got["g"], np.concatenate(xs)), (kind, r)
            assert np.array_equal(got["rs"], sum(xs)[2 * r:2 * r + 2]), (kind, r)
            assert np.array_equal(got["a2a"], np.concatenate([x[2 * r:2 * r + 2] for x in xs])), (kind, r)
            assert (got["ga"] is None) == (r != 1) and (r != 1 or np.array_equal(got["ga"], np.concatenate(xs)))
            assert np.array_equal(got["sc"], xs[1][2 * r:2 * r + 2]), (kind, r)
            assert got["v"] == [r + 10 * q for q in range(nranks)], (kind, r)
