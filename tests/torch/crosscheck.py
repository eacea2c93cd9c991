"""Rank-side half of the cross-backend suite: every collective runs through torch.distributed on an
mscomm group and on a gloo group over the same ranks, with the same random inputs, and the
results must agree (exactly for integers and bool, within a dtype tolerance for floats).

Where gloo refuses a combination (AVG, some dtypes), the reference is computed locally from every
rank's input, gathered through gloo (data movement is exact). ``run_all`` returns the list of
mismatches and the number of checks made.
"""

from __future__ import annotations

import zlib

import torch
import torch.distributed as dist

R = dist.ReduceOp
FLOATS = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
INTS = [torch.int32, torch.int64, torch.int8, torch.uint8]
EXTRA = [torch.bool, torch.int16, torch.complex64]
GLOO_A2A = (torch.float32, torch.int64, torch.uint8)
TOL = {torch.float16: 2e-2, torch.bfloat16: 5e-2, torch.float32: 1e-5, torch.float64: 1e-12, torch.complex64: 1e-5}
LOCAL = {R.SUM: lambda a, b: a + b, R.PRODUCT: lambda a, b: a * b, R.MIN: torch.minimum, R.MAX: torch.maximum,
         R.BAND: torch.bitwise_and, R.BOR: torch.bitwise_or, R.BXOR: torch.bitwise_xor}


class Checker:
    def __init__(self, rank: int, size: int, ms, gloo) -> None:
        self.rank, self.size, self.ms, self.gloo = rank, size, ms, gloo
        self.failures: list[str] = []
        self.checks = 0

    # -- inputs -----------------------------------------------------------------------------
    def data(self, case: str, shape, dtype: torch.dtype, rank: int | None = None, op=None) -> torch.Tensor:
        """The same values on every backend: seeded by the case and the rank that owns them."""
        owner = self.rank if rank is None else rank
        g = torch.Generator().manual_seed(zlib.crc32(f"{case}@{owner}".encode()))
        if dtype == torch.bool:
            return torch.randint(0, 2, shape, generator=g).bool()
        if dtype.is_complex:
            return torch.randn(shape, generator=g, dtype=dtype)
        if dtype.is_floating_point:
            lo, hi = (0.5, 1.5) if op == R.PRODUCT else (-4, 4)
            return (torch.rand(shape, generator=g, dtype=torch.float64) * (hi - lo) + lo).to(dtype)
        if op == R.PRODUCT:
            return torch.randint(1, 4, shape, generator=g).to(dtype)
        info = torch.iinfo(dtype)
        return torch.randint(max(info.min, -100), min(info.max, 100) + 1, shape, generator=g).to(dtype)

    # -- comparison -------------------------------------------------------------------------
    def same(self, case: str, got, want) -> None:
        self.checks += 1
        if isinstance(got, (list, tuple)):
            if len(got) != len(want):
                self.failures.append(f"{case}: {len(got)} tensors, expected {len(want)}")
                return
            for i, (a, b) in enumerate(zip(got, want)):
                self._one(f"{case}[{i}]", a, b)
            return
        self._one(case, got, want)

    def _one(self, case: str, a: torch.Tensor, b: torch.Tensor) -> None:
        if a.dtype != b.dtype or a.shape != b.shape:
            self.failures.append(f"{case}: got {a.dtype}{tuple(a.shape)}, expected {b.dtype}{tuple(b.shape)}")
            return
        if a.dtype in TOL:
            tol = TOL[a.dtype] * self.size
            ok = torch.allclose(a.to(torch.complex128 if a.is_complex() else torch.float64),
                                b.to(torch.complex128 if b.is_complex() else torch.float64), rtol=tol, atol=tol)
        else:
            ok = torch.equal(a, b)
        if not ok:
            self.failures.append(f"{case} rank {self.rank}: got {a.flatten()[:8].tolist()} expected "
                                 f"{b.flatten()[:8].tolist()}")

    def reference_reduce(self, case: str, shape, dtype, op) -> torch.Tensor:
        """Every rank's input, reduced locally (the reference where gloo refuses)."""
        inputs = [self.data(case, shape, dtype, r, op) for r in range(self.size)]
        if op == R.AVG:
            acc = sum(x.to(torch.float64 if not dtype.is_complex else torch.complex128) for x in inputs) / self.size
            return acc.to(dtype)
        if dtype == torch.bool and op in (R.SUM, R.PRODUCT, R.MIN, R.MAX):
            op = {R.SUM: R.BOR, R.MAX: R.BOR, R.PRODUCT: R.BAND, R.MIN: R.BAND}[op]
        acc = inputs[0].clone()
        for x in inputs[1:]:
            acc = LOCAL[op](acc, x).to(dtype)
        return acc

    def gloo_or_local(self, case, fn, shape, dtype, op) -> torch.Tensor | None:
        """Run ``fn(gloo_group)``; where gloo refuses, None (the caller uses the local reference)."""
        try:
            return fn(self.gloo)
        except (RuntimeError, ValueError, TypeError):
            return None


def _ops_for(dtype: torch.dtype) -> list:
    if dtype == torch.bool:
        return [R.SUM, R.PRODUCT, R.MIN, R.MAX, R.BAND, R.BOR, R.BXOR]
    if dtype.is_complex:
        return [R.SUM, R.AVG]
    if dtype.is_floating_point:
        return [R.SUM, R.PRODUCT, R.MIN, R.MAX, R.AVG]
    return [R.SUM, R.PRODUCT, R.MIN, R.MAX, R.BAND, R.BOR, R.BXOR]


def check_reductions(c: Checker, sizes) -> None:
    """all_reduce, reduce (every root), reduce_scatter_tensor and reduce_scatter for every dtype x op."""
    n = c.size
    for dtype in FLOATS + INTS + EXTRA:
        for op in _ops_for(dtype):
            for numel in sizes:
                case = f"allreduce/{n}ranks/{numel}/{dtype}/{op}"
                x = c.data(case, (numel,), dtype, op=op)
                got = x.clone()
                dist.all_reduce(got, op=op, group=c.ms)
                want = None
                if op != R.AVG:
                    want = x.clone()
                    want = c.gloo_or_local(case, lambda g: (dist.all_reduce(want, op=op, group=g), want)[1],
                                           x.shape, dtype, op)
                c.same(case, got, want if want is not None else c.reference_reduce(case, x.shape, dtype, op))
            if dtype in (torch.float32, torch.int64, torch.bool, torch.int16):
                for root in range(n):
                    case = f"reduce/{n}ranks/root{root}/{dtype}/{op}"
                    x = c.data(case, (33,), dtype, op=op)
                    got = x.clone()
                    dist.reduce(got, dst=root, op=op, group=c.ms)
                    if c.rank == root:
                        c.same(case, got, c.reference_reduce(case, x.shape, dtype, op))
            if dtype in (torch.float32, torch.bfloat16, torch.int32, torch.uint8, torch.bool, torch.int16) and op != R.AVG:
                case = f"reduce_scatter_tensor/{n}ranks/{dtype}/{op}"
                x = c.data(case, (n * 10,), dtype, op=op)
                got = torch.empty(10, dtype=dtype)
                dist.reduce_scatter_tensor(got, x, op=op, group=c.ms)
                want = c.reference_reduce(case, x.shape, dtype, op)[c.rank * 10:(c.rank + 1) * 10]
                c.same(case, got, want)
                case = f"reduce_scatter/{n}ranks/{dtype}/{op}"
                parts = [c.data(case + str(i), (5, 3), dtype, op=op) for i in range(n)]
                got = torch.empty(5, 3, dtype=dtype)
                dist.reduce_scatter(got, parts, op=op, group=c.ms)
                ref = [c.data(case + str(c.rank), (5, 3), dtype, r, op) for r in range(n)]
                acc = ref[0].clone()
                if dtype == torch.bool:
                    lop = {R.SUM: R.BOR, R.MAX: R.BOR, R.PRODUCT: R.BAND, R.MIN: R.BAND}.get(op, op)
                else:
                    lop = op
                for t in ref[1:]:
                    acc = LOCAL[lop](acc, t).to(dtype)
                c.same(case, got, acc)
    # Ops and dtypes the backend must refuse, never answer wrongly.
    for dtype, op in [(torch.float32, R.BAND), (torch.float32, R.BXOR), (torch.uint64, R.MIN),
                      (torch.float32, dist._make_nccl_premul_sum(2.0))]:
        c.checks += 1
        try:
            dist.all_reduce(torch.ones(4, dtype=dtype), op=op, group=c.ms)
            c.failures.append(f"all_reduce {dtype} {op} did not raise")
        except ValueError as e:
            if "mscomm backend" not in str(e):
                c.failures.append(f"all_reduce {dtype} {op}: unclear error {e}")


def check_movement(c: Checker) -> None:
    n, rank = c.size, c.rank
    for dtype in [torch.float32, torch.bfloat16, torch.int64, torch.uint8, torch.bool, torch.complex64, torch.int16]:
        for root in range(n):
            case = f"broadcast/{n}ranks/root{root}/{dtype}"
            got = c.data(case, (3, 7), dtype)
            dist.broadcast(got, src=root, group=c.ms)
            c.same(case, got, c.data(case, (3, 7), dtype, root))
        case = f"all_gather/{n}ranks/{dtype}"
        x = c.data(case, (4, 5), dtype)
        out = [torch.empty(4, 5, dtype=dtype) for _ in range(n)]
        dist.all_gather(out, x, group=c.ms)
        c.same(case, out, [c.data(case, (4, 5), dtype, r) for r in range(n)])
        case = f"all_gather_into_tensor/{n}ranks/{dtype}"
        x = c.data(case, (6,), dtype)
        out = torch.empty(n * 6, dtype=dtype)
        dist.all_gather_into_tensor(out, x, group=c.ms)
        ref = torch.empty_like(out)
        dist.all_gather_into_tensor(ref, x, group=c.gloo) if dtype not in (torch.complex64, torch.int16) else \
            ref.copy_(torch.cat([c.data(case, (6,), dtype, r) for r in range(n)]))
        c.same(case, out, ref)
        # all_to_all_single: equal and uneven splits
        case = f"all_to_all_single/{n}ranks/{dtype}"
        x = c.data(case, (n * 3, 2), dtype)
        got = torch.empty_like(x)
        dist.all_to_all_single(got, x, group=c.ms)
        c.same(case, got, torch.cat([c.data(case, (n * 3, 2), dtype, q)[rank * 3:rank * 3 + 3] for q in range(n)]))
        if dtype in GLOO_A2A:
            ref = torch.empty_like(x)
            dist.all_to_all_single(ref, x, group=c.gloo)
            c.same(case + "/gloo", got, ref)
        case = f"all_to_all_single_uneven/{n}ranks/{dtype}"
        splits = [[(q + p) % 3 + (p == 0) for p in range(n)] for q in range(n)]     # rows rank q sends to p
        send, recv = splits[rank], [splits[q][rank] for q in range(n)]
        x = c.data(case, (sum(send), 3), dtype)
        got = torch.empty(sum(recv), 3, dtype=dtype)
        dist.all_to_all_single(got, x, recv, send, group=c.ms)
        want = [c.data(case, (sum(splits[q]), 3), dtype, q)[sum(splits[q][:rank]):sum(splits[q][:rank + 1])]
                for q in range(n)]
        c.same(case, got, torch.cat(want))
        if dtype in GLOO_A2A:
            ref = torch.empty_like(got)
            dist.all_to_all_single(ref, x, recv, send, group=c.gloo)
            c.same(case + "/gloo", got, ref)
        case = f"all_to_all/{n}ranks/{dtype}"
        ins = [c.data(case + str(p), (rank + p + 1,), dtype) for p in range(n)]
        got = [torch.empty(q + rank + 1, dtype=dtype) for q in range(n)]
        dist.all_to_all(got, ins, group=c.ms)       # gloo refuses uneven lists: reference from the seeds
        c.same(case, got, [c.data(case + str(rank), (q + rank + 1,), dtype, q) for q in range(n)])
        for root in range(n):
            case = f"gather/{n}ranks/root{root}/{dtype}"
            x = c.data(case, (5,), dtype)
            out = [torch.empty(5, dtype=dtype) for _ in range(n)] if rank == root else None
            dist.gather(x, out, dst=root, group=c.ms)
            if rank == root:
                c.same(case, out, [c.data(case, (5,), dtype, r) for r in range(n)])
            case = f"scatter/{n}ranks/root{root}/{dtype}"
            parts = [c.data(case + str(p), (2, 2), dtype, root) for p in range(n)] if rank == root else None
            got = torch.empty(2, 2, dtype=dtype)
            dist.scatter(got, parts, src=root, group=c.ms)
            c.same(case, got, c.data(case + str(rank), (2, 2), dtype, root))


def check_noncontiguous(c: Checker) -> None:
    n = c.size
    case = f"noncontig/allreduce/{n}ranks"
    base = c.data(case, (6, 8), torch.float64)
    got, ref = base.clone().t(), base.clone().t()        # transposed: non-contiguous
    dist.all_reduce(got, group=c.ms)
    dist.all_reduce(ref, group=c.gloo)
    c.same(case, got, ref)
    case = f"noncontig/allreduce-int16/{n}ranks"
    base = c.data(case, (6, 8), torch.int16)
    got = base.clone()[:, ::2]
    dist.all_reduce(got, op=R.MAX, group=c.ms)
    c.same(case, got, c.reference_reduce(case, (6, 8), torch.int16, R.MAX)[:, ::2])
    case = f"noncontig/broadcast/{n}ranks"
    storage = c.data(case, (5, 6), torch.int32)
    got = storage[:, 1::2]
    dist.broadcast(got, src=n - 1, group=c.ms)
    c.same(case, got, c.data(case, (5, 6), torch.int32, n - 1)[:, 1::2])
    c.same(case + "/untouched", storage[:, 0::2], c.data(case, (5, 6), torch.int32)[:, 0::2])
    case = f"noncontig/all_gather/{n}ranks"
    x = c.data(case, (4, 6), torch.float32)[:, ::3]
    outs = [torch.zeros(2, 4, dtype=torch.float32).t() for _ in range(n)]
    dist.all_gather(outs, x, group=c.ms)
    c.same(case, outs, [c.data(case, (4, 6), torch.float32, r)[:, ::3] for r in range(n)])
    case = f"noncontig/all_gather_into_tensor/{n}ranks"
    out = torch.zeros(3, n * 4).t()
    x = c.data(case, (3, 4), torch.float32).t()
    dist.all_gather_into_tensor(out, x, group=c.ms)
    c.same(case, out, torch.cat([c.data(case, (3, 4), torch.float32, r).t() for r in range(n)]))


def check_async_and_p2p(c: Checker) -> None:
    n, rank = c.size, c.rank
    case = f"async/allreduce/{n}ranks"
    xs = [c.data(case + str(i), (1000,), torch.float32) for i in range(4)]
    works = [dist.all_reduce(x, group=c.ms, async_op=True) for x in xs]
    for w in works:
        w.wait()
    refs = [c.data(case + str(i), (1000,), torch.float32) for i in range(4)]
    for r in refs:
        dist.all_reduce(r, group=c.gloo)
    c.same(case, xs, refs)
    c.same(case + "/future", works[0].get_future().value(), [xs[0]])
    case = f"async/broadcast+barrier/{n}ranks"
    y = c.data(case, (17,), torch.int64)
    w1 = dist.broadcast(y, src=0, group=c.ms, async_op=True)
    w2 = dist.barrier(group=c.ms, async_op=True)
    w1.wait()
    w2.wait()
    c.same(case, y, c.data(case, (17,), torch.int64, 0))
    # send/recv with tags: rank r sends to r+1, r+1 receives (blocking), then a ring with isend/irecv
    # and a ring with batch_isend_irecv, small and above the 2 MiB of pipe slots.
    nxt, prv = (rank + 1) % n, (rank - 1) % n
    case = f"send_recv/{n}ranks"
    if rank % 2 == 0 and nxt != rank and not (n % 2 and rank == n - 1):
        dist.send(c.data(case, (9,), torch.float32), dst=nxt, tag=7, group=c.ms)
    elif rank % 2 == 1:
        got = torch.empty(9)
        dist.recv(got, src=prv, tag=7, group=c.ms)
        c.same(case, got, c.data(case, (9,), torch.float32, prv))
    for numel in (100, 700_000):
        case = f"isend_irecv_ring/{n}ranks/{numel}"
        got = torch.empty(numel)
        works = [dist.isend(c.data(case, (numel,), torch.float32), dst=nxt, tag=3, group=c.ms),
                 dist.irecv(got, src=prv, tag=3, group=c.ms)]
        for w in works:
            w.wait()
        c.same(case, got, c.data(case, (numel,), torch.float32, prv))
        case = f"batch_isend_irecv/{n}ranks/{numel}"
        got = torch.empty(numel)
        ops = [dist.P2POp(dist.isend, c.data(case, (numel,), torch.float32), nxt, c.ms, 5),
               dist.P2POp(dist.irecv, got, prv, c.ms, 5)]
        for w in dist.batch_isend_irecv(ops):
            w.wait()
        c.same(case, got, c.data(case, (numel,), torch.float32, prv))


def check_objects_and_functional(c: Checker) -> None:
    n, rank = c.size, c.rank
    case = f"objects/{n}ranks"
    out = [None] * n
    dist.all_gather_object(out, {"rank": rank, "s": "x" * rank}, group=c.ms)
    c.checks += 1
    if out != [{"rank": r, "s": "x" * r} for r in range(n)]:
        c.failures.append(f"{case}: all_gather_object gave {out}")
    objs = [["hello", rank]] if rank == 1 % n else [None]
    dist.broadcast_object_list(objs, src=1 % n, group=c.ms)
    c.checks += 1
    if objs != [["hello", 1 % n]]:
        c.failures.append(f"{case}: broadcast_object_list gave {objs}")
    got = [None] * n if rank == 0 else None
    dist.gather_object(("g", rank), got, dst=0, group=c.ms)
    if rank == 0:
        c.checks += 1
        if got != [("g", r) for r in range(n)]:
            c.failures.append(f"{case}: gather_object gave {got}")
    out = [None]
    dist.scatter_object_list(out, [{"to": r} for r in range(n)] if rank == 0 else None, src=0, group=c.ms)
    c.checks += 1
    if out != [{"to": rank}]:
        c.failures.append(f"{case}: scatter_object_list gave {out}")

    import torch.distributed._functional_collectives as fc

    case = f"functional/{n}ranks"
    x = c.data(case, (8,), torch.float32)
    ref = x.clone()
    dist.all_reduce(ref, group=c.gloo)
    c.same(case + "/all_reduce", fc.all_reduce(x, "sum", c.ms).wait(), ref)
    ag = fc.all_gather_tensor(x, 0, c.ms)
    c.same(case + "/all_gather_tensor", torch.as_tensor(ag.wait() if hasattr(ag, "wait") else ag),
           torch.cat([c.data(case, (8,), torch.float32, r) for r in range(n)]))
    big = c.data(case + "rs", (n * 4,), torch.float32)
    ref = big.clone()
    dist.all_reduce(ref, group=c.gloo)
    rs = fc.reduce_scatter_tensor(big, "sum", 0, c.ms)
    c.same(case + "/reduce_scatter_tensor", torch.as_tensor(rs.wait() if hasattr(rs, "wait") else rs),
           ref[rank * 4:(rank + 1) * 4])
    a2a = fc.all_to_all_single(c.data(case + "a2a", (n * 2,), torch.float32), None, None, c.ms)
    ref = torch.empty(n * 2)
    dist.all_to_all_single(ref, c.data(case + "a2a", (n * 2,), torch.float32), group=c.gloo)
    c.same(case + "/all_to_all_single", torch.as_tensor(a2a.wait() if hasattr(a2a, "wait") else a2a), ref)
    case = f"all_reduce_coalesced/{n}ranks"
    ts = [c.data(case + str(i), (i + 3,), torch.float64) for i in range(3)]
    refs = [t.clone() for t in ts]
    dist.all_reduce_coalesced(ts, group=c.ms)
    for t in refs:
        dist.all_reduce(t, group=c.gloo)
    c.same(case, ts, refs)
    # all_gather_coalesced: output_tensor_lists[r][i] is rank r's input i. As many inputs as ranks,
    # of equal size, so an output read transposed would fit the shapes and be silently wrong.
    case = f"all_gather_coalesced/{n}ranks"
    ins = [c.data(case + str(i), (3,), torch.float32) for i in range(n)]
    outs = {g: [[torch.empty(3) for _ in range(n)] for _ in range(n)] for g in ("ms", "gloo")}
    dist.all_gather_coalesced(outs["ms"], ins, group=c.ms)
    dist.all_gather_coalesced(outs["gloo"], ins, group=c.gloo)
    c.same(case, [t for o in outs["ms"] for t in o], [t for o in outs["gloo"] for t in o])


def check_subgroups(c: Checker) -> None:
    """Several mscomm groups live at once: even ranks, odd ranks, and the world."""
    n, rank = c.size, c.rank
    evens, odds = list(range(0, n, 2)), list(range(1, n, 2))
    g_even = dist.new_group(evens, backend="mscomm")
    g_odd = dist.new_group(odds, backend="mscomm")
    mine, members = (g_even, evens) if rank % 2 == 0 else (g_odd, odds)
    case = f"subgroup/{n}ranks"
    x = torch.full((5,), float(rank + 1))
    dist.all_reduce(x, group=mine)
    c.same(case, x, torch.full((5,), float(sum(r + 1 for r in members))))
    y = torch.full((3,), float(rank))
    dist.broadcast(y, src=members[-1], group=mine)        # src is a global rank
    c.same(case + "/broadcast", y, torch.full((3,), float(members[-1])))
    z = torch.ones(2)
    dist.all_reduce(z, group=c.ms)
    c.same(case + "/world-after", z, torch.full((2,), float(n)))
    dist.destroy_process_group(g_even)
    dist.destroy_process_group(g_odd)


def run_all(rank: int, size: int, ms, gloo, sizes=(1, 7, 1000, 70_000)) -> tuple[list[str], int]:
    c = Checker(rank, size, ms, gloo)
    for step in (lambda: check_reductions(c, sizes), lambda: check_movement(c), lambda: check_noncontiguous(c),
                 lambda: check_async_and_p2p(c), lambda: check_objects_and_functional(c),
                 lambda: check_subgroups(c)):
        step()
    return c.failures, c.checks
