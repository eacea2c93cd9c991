"""allreduce against a numpy reference: every dtype x op x size (0, 1, odd, multi-block) x
world size 1-8 x transport (shared memory, TCP) x algorithm, in place and out of place.

One job per (transport, world size, algorithm) runs the whole dtype x op x size matrix inside
its ranks and reports every case by id (``allreduce/shm/4ranks/4097B/float32/sum/inplace``), so
the matrix costs a few process launches, not thousands."""

from __future__ import annotations

import pytest

from harness import run_job, transports_env

# Rank code: for each case, every rank builds every rank's input from a shared seed, so each
# computes the reference itself; it reports the ids of failing cases and a digest of its results
# (every rank must hold bit-identical results).
MATRIX = r'''
import hashlib, itertools, ml_dtypes
DTYPES = ["float16", "bfloat16", "float32", "float64", "int8", "int32", "int64", "uint8"]
OPS = ["sum", "prod", "min", "max", "avg"]
COUNTS = [0, 1, 7, 4097, 40001]
algorithm = sys.argv[1]
transport = sys.argv[2]

def np_dtype(name):
    return np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(name)

def inputs(count, dtype, op, seed):
    rng = np.random.default_rng(seed)
    if op == "prod":   # exact in every dtype: powers of two (floats) or small values (ints wrap anyway)
        vals = [0.5, 1.0, 2.0, -1.0] if dtype.kind == "f" or dtype.name == "bfloat16" else [1, 2, 3, -1]
        if dtype.kind == "u":
            vals = [1, 2, 3]
        return [rng.choice(vals, count).astype(dtype) for _ in range(SIZE)]
    lo, hi = (0, 50) if dtype.kind == "u" else (-20, 20)
    return [rng.integers(lo, hi, count).astype(dtype) for _ in range(SIZE)]

def reference(xs, dtype, op):
    if dtype.kind in "iu":
        stack = np.stack(xs).astype(dtype)
        if op in ("sum", "avg"):
            s = np.sum(stack, axis=0, dtype=dtype)      # wraps, as C integers do
            if op == "sum":
                return s
            s64 = s.astype(np.int64)
            return (np.sign(s64) * (np.abs(s64) // SIZE)).astype(dtype)  # truncating division
        if op == "prod":
            return np.prod(stack, axis=0, dtype=dtype)
        return (np.min if op == "min" else np.max)(stack, axis=0)
    stack = np.stack([x.astype(np.float64) for x in xs])
    r = {"sum": np.sum, "prod": np.prod, "min": np.min, "max": np.max}.get(op, np.mean)(stack, axis=0)
    return r.astype(dtype)

if os.environ.get("TEST_RANKS_PER_HOST"):  # emulate several hosts: shm within, TCP between
    os.environ["MSCOMM_HOST_ID"] = f"host{RANK // int(os.environ['TEST_RANKS_PER_HOST'])}"
comm = mscomm.init()
failures, digest, cases = [], hashlib.sha256(), 0
for dt_name, op, count, inplace in itertools.product(DTYPES, OPS, COUNTS, (True, False)):
    dtype = np_dtype(dt_name)
    seed = hash((dt_name, op, count)) % (2**32)
    xs = inputs(count, dtype, op, [count, DTYPES.index(dt_name), OPS.index(op)])
    x = xs[RANK].copy()
    ref = reference(xs, dtype, op)
    if inplace:
        got = mscomm.allreduce(x, op, algorithm=algorithm)
    else:
        out = np.full(count, 99, dtype)
        got = mscomm.allreduce(x, op, out=out, algorithm=algorithm)
        if not np.array_equal(x, xs[RANK]):
            failures.append(f"{dt_name}/{op}/{count}: out-of-place call changed its input")
    exact = np.array_equal(got.astype(np.float64), ref.astype(np.float64))
    if not exact and dt_name in ("float16", "bfloat16", "float32", "float64") and op == "avg":
        # avg divides once; allow the last bit of rounding
        eps = float(np.finfo(np.float32).eps if dt_name == "float32" else np.finfo(np.float64).eps) \
            if dt_name in ("float32", "float64") else (2**-10 if dt_name == "float16" else 2**-7)
        exact = np.allclose(got.astype(np.float64), ref.astype(np.float64), rtol=2 * eps, atol=2 * eps)
    if not exact:
        bad = np.flatnonzero(got.astype(np.float64) != ref.astype(np.float64))[:3]
        failures.append(f"allreduce/{transport}/{SIZE}ranks/{count * dtype.itemsize}B/{dt_name}/{op}/"
                        f"{'inplace' if inplace else 'outofplace'}: at {bad.tolist()} got "
                        f"{got[bad].astype(np.float64).tolist()} want {ref[bad].astype(np.float64).tolist()}")
    digest.update(np.ascontiguousarray(got).tobytes())
    cases += 1
emit({"failures": failures[:20], "nfail": len(failures), "cases": cases, "digest": digest.hexdigest()})
mscomm.finalize()
'''

# Small scratch slots make the multi-block paths (several rsag blocks, several ring blocks) run
# with test-sized messages; a small one-shot limit makes both shm algorithms run.
SMALL_SLOTS = {"MSCOMM_SHM_SLOT_BYTES": 16384, "MSCOMM_TCP_SLOT_BYTES": 8192, "MSCOMM_ONESHOT_MAX_BYTES": 2048,
               "MSCOMM_TIMEOUT": 60}

CASES = [("shm", n, "auto") for n in range(1, 9)] + [("shm", n, "ring") for n in (2, 3, 5, 8)] + \
        [("tcp", n, "auto") for n in range(2, 9)] + \
        [("2perhost", 4, "auto"), ("2perhost", 6, "auto"), ("2perhost", 5, "auto"), ("2perhost", 4, "ring")]


@pytest.mark.parametrize("transport,nranks,algorithm", CASES,
                         ids=[f"allreduce/{t}/{n}ranks/{a}" for t, n, a in CASES])
@pytest.mark.timeout(240)
def test_allreduce_matrix(transport, nranks, algorithm):
    env = {**SMALL_SLOTS, **transports_env(transport)}
    job = run_job(nranks, MATRIX, env=env, timeout=200, args=[algorithm, transport]).check_ok()
    reports = [job.results(r)[0] for r in range(nranks)]
    failures = [f for rep in reports for f in rep["failures"]]
    assert not failures, f"{sum(r['nfail'] for r in reports)} failing cases, first ones:\n" + "\n".join(failures)
    assert reports[0]["cases"] == 8 * 5 * 5 * 2
    assert len({rep["digest"] for rep in reports}) == 1, "ranks hold different results"


LARGE = r'''
count = (64 << 20) // 4 + 3          # just over 64 MiB of float32, odd
base = (np.arange(count, dtype=np.int64) % 7).astype(np.float32)
x = base + RANK
out = np.empty_like(x)
mscomm.init()
mscomm.allreduce(x, "sum", out=out)
want = base * SIZE + sum(range(SIZE))
emit({"wrong": int(np.count_nonzero(out != want)), "input_kept": bool(np.array_equal(x, base + RANK))})
mscomm.allreduce(x, "max")
emit({"wrong_inplace": int(np.count_nonzero(x != base + SIZE - 1))})
mscomm.finalize()
'''


@pytest.mark.parametrize("transport,nranks", [("shm", 2), ("shm", 4), ("tcp", 2)],
                         ids=["allreduce/shm/2ranks/64MiB", "allreduce/shm/4ranks/64MiB", "allreduce/tcp/2ranks/64MiB"])
@pytest.mark.timeout(240)
def test_allreduce_64mib(transport, nranks):
    job = run_job(nranks, LARGE, env=transports_env(transport), timeout=200).check_ok()
    for r in range(nranks):
        first, second = job.results(r)
        assert first == {"wrong": 0, "input_kept": True}
        assert second == {"wrong_inplace": 0}


TORCH = r'''
import torch
mscomm.init()
report = {}
for dt in [torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int8, torch.int32, torch.int64, torch.uint8]:
    t = (torch.arange(1001) % 5 + RANK).to(dt)
    mscomm.allreduce(t, "sum")
    want = ((torch.arange(1001) % 5) * SIZE + sum(range(SIZE))).to(dt)
    out = torch.zeros(1001, dtype=dt)
    mscomm.allreduce((torch.arange(1001) % 5).to(dt), "max", out=out)
    report[str(dt)] = bool(torch.equal(t, want)) and bool(torch.equal(out, (torch.arange(1001) % 5).to(dt)))
emit(report)
mscomm.finalize()
'''


@pytest.mark.parametrize("transport", ["shm", "tcp"])
def test_allreduce_torch_tensors(transport):
    pytest.importorskip("torch")
    job = run_job(3, TORCH, env=transports_env(transport), timeout=120).check_ok()
    for r in range(3):
        report = job.results(r)[0]
        assert all(report.values()), report
