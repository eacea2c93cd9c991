"""``ProcessGroupMscomm``: torch.distributed's process-group interface served by an mscomm Communicator.

Every method turns torch's arguments into flat wire tensors (see ``wire.py``), builds a ``body``
that runs the core collective and copies results back where needed, and hands it to ``_issue``:

* a synchronous call (``opts.asyncOp`` False: plain ``dist.*`` calls) first waits for this group's
  pending asynchronous work, then runs ``body`` inline, with the GIL released inside the core;
* an asynchronous one (``async_op=True``, DDP, functional collectives, every send/recv) runs on
  the group's single worker thread, so the core still sees one operation at a time, in issue order.

Either way the caller gets an ``MscommWork`` whose future holds the output tensors.

Point to point: the core matches the transfers between two ranks as one ordered sequence, so two
ranks that both post a send before a recv (the usual exchange, ``batch_isend_irecv``) would
disagree. ``isend``/``irecv`` are therefore queued, and the queue is flushed (handed to the worker
thread) when any of its Works is waited on or queried, or before the next collective. A flush runs
its transfers pair by pair in one global order (lowest pair of ranks first); within a pair the
lower rank sends first and the higher rank receives first. Every rank agrees on that order, so a
batch that both sides post completely before waiting neither mismatches nor deadlocks.
"""


from __future__ import annotations

import concurrent.futures
import math
import re
import time
from datetime import timedelta
from typing import Any, Callable, Sequence

import torch
import torch.distributed as dist

from mscomm.communicator import Communicator
from mscomm.errors import InvalidArgument, Timeout
from mscomm.torch import wire
from mscomm.torch.executor import LEFT_KEY, ExecutorMixin
from mscomm.torch.fast import FastPathMixin
from mscomm.torch.p2p import P2PMixin
from mscomm.torch.staging import _as_wire, _check_cpu, _check_device, _row_counts, _single, _Staged, _unpack
from mscomm.torch.work import MscommWork

Tensor = torch.Tensor


def _silent(message: str) -> str:
    """Who a timed-out core call was waiting for, read from its message."""
    m = re.search(r"not heard from ranks? \[?([0-9, ]+)\]?", message) or re.search(r"from rank ([0-9]+)", message)
    if m is None:
        return "some ranks did not reach it"
    ranks = [int(r) for r in re.findall(r"[0-9]+", m.group(1))]
    return f"not heard from rank{'s' if len(ranks) > 1 else ''} {', '.join(map(str, ranks))}"


def _store_wait(store: Any, key: str, seconds: float) -> bool:
    """Whether ``key`` appears in ``store`` within ``seconds`` (0: just look)."""
    if seconds <= 0:
        return bool(store.check([key]))
    try:
        store.wait([key], timedelta(seconds=seconds))
        return True
    except (RuntimeError, dist.DistError):
        return False


class ProcessGroupMscomm(ExecutorMixin, P2PMixin, FastPathMixin, dist.ProcessGroup):
    """A torch process group whose collectives run on an mscomm :class:`~mscomm.Communicator`.

    Made by the backend creator (``dist.init_process_group("mscomm")``, ``dist.new_group(...,
    backend="mscomm")``); not meant to be built by hand.

    Parameters
    ----------
    comm : mscomm.Communicator
        The group's communicator (its rank and size are the group's).
    timeout : float
        The group timeout in seconds, used when an operation's options leave it unset.
    """

    def __init__(self, comm: Communicator, timeout: float, store: Any = None) -> None:
        super().__init__(comm.rank, comm.size)
        self._comm = comm
        self._timeout = timeout
        self._store = store  # the group's store (monitored_barrier); None when made by hand
        self._monitored = 0  # monitored barriers so far (every rank counts alike)
        self._worker: concurrent.futures.ThreadPoolExecutor | None = None
        self._pending: concurrent.futures.Future | None = None
        self._p2p: list[tuple[tuple[int, int, int, int], Callable[[], None], concurrent.futures.Future]] = []
        self._group_name = ""
        self._group_desc = ""

    # -- identity ----------------------------------------------------------------------------
    def getBackendName(self) -> str:  # noqa: N802 - torch's name
        return "mscomm"

    def name(self) -> str:
        return "mscomm"

    # torch's _set_group_name/_set_group_desc call these virtually; the group_name and group_desc
    # properties read them back (functional collectives and DeviceMesh look groups up by name).
    def setGroupName(self, name: str) -> None:  # noqa: N802 - torch's name
        self._group_name = name

    def getGroupName(self) -> str:  # noqa: N802 - torch's name
        return self._group_name

    def setGroupDesc(self, desc: str) -> None:  # noqa: N802 - torch's name
        self._group_desc = desc

    def getGroupDesc(self) -> str:  # noqa: N802 - torch's name
        return self._group_desc

    @property
    def communicator(self) -> Communicator:
        """The mscomm communicator under this group (for mscomm-only calls on the same ranks)."""
        return self._comm

    def __repr__(self) -> str:
        return f"<ProcessGroupMscomm rank={self.rank()} size={self.size()} name={self._group_name!r}>"

    # -- running operations -------------------------------------------------------------------
    # -- reductions ---------------------------------------------------------------------------
    def _allreduce_one(self, t: Tensor, op: Any, what: str) -> Callable[[float], None]:
        _check_device(t)
        red = wire.reduction(what, t.dtype, op)
        out = _Staged(t, red.encoding)
        comm = self._comm

        def body(seconds: float) -> None:
            if red.local is None:
                comm.allreduce(out.wire, red.op, timeout=seconds)
            else:
                everyone = torch.empty(comm.size * out.wire.numel(), dtype=out.wire.dtype)
                comm.allgather(out.wire, out=everyone, timeout=seconds)
                out.wire.copy_(wire.fold(red.local, everyone, comm.size))
            out.finish()

        return body

    def allreduce(self, tensors: Any, opts: Any = None) -> MscommWork:
        fast = self._fast_allreduce(tensors, opts)
        if fast is not None:
            return fast
        if opts is None or not hasattr(opts, "reduceOp"):
            op, opts = (opts if opts is not None else dist.ReduceOp.SUM), None
        else:
            op = opts.reduceOp
        tensors = [tensors] if isinstance(tensors, Tensor) else list(tensors)
        if any(t.is_sparse for t in tensors):
            return self._allreduce_sparse(tensors, op, opts)
        bodies = [self._allreduce_one(t, op, "allreduce") for t in tensors]
        return self._run(opts, lambda s: [b(s) for b in bodies] and None, tensors)

    def _allreduce_sparse(self, tensors: list[Tensor], op: Any, opts: Any) -> MscommWork:
        """Sparse COO SUM as gloo does it: gather every rank's indices and values, sum locally, and
        write the (coalesced) result into each input tensor."""
        if len(tensors) != 1 or not tensors[0].is_sparse or tensors[0].layout is not torch.sparse_coo:
            raise InvalidArgument("mscomm backend: sparse allreduce takes one sparse COO tensor")
        if wire.op_type(op) != dist.ReduceOp.RedOpType.SUM:
            raise InvalidArgument("mscomm backend: sparse allreduce supports ReduceOp.SUM only (as gloo)")
        t, comm = tensors[0], self._comm
        _check_cpu(t)

        def gathered(x: Tensor, seconds: float) -> list[Tensor]:
            """Every rank's ``x`` (same dtype and trailing shape, any dim-0 length), in rank order."""
            n = torch.tensor([x.shape[0]], dtype=torch.int64)
            counts = comm.allgather(n, timeout=seconds).tolist()
            row = x.element_size() * math.prod(x.shape[1:])  # bytes per dim-0 entry
            if max(counts) * row == 0:
                return [x.new_empty((c, *x.shape[1:])) for c in counts]
            mine = torch.zeros(max(counts) * row, dtype=torch.uint8)
            if x.numel():
                mine[:x.shape[0] * row] = x.contiguous().view(-1).view(torch.uint8)
            everyone = comm.allgather(mine, timeout=seconds).view(comm.size, -1)
            return [everyone[r, :counts[r] * row].view(x.dtype).view(counts[r], *x.shape[1:]) for r in range(comm.size)]

        def body(seconds: float) -> None:
            local = t.coalesce()
            idx = gathered(local.indices().t().contiguous(), seconds)
            val = gathered(local.values(), seconds)
            total = torch.sparse_coo_tensor(torch.cat(idx).t(), torch.cat(val), t.shape).coalesce()
            t.copy_(total)

        return self._run(opts, body, [t])

    def allreduce_coalesced(self, tensors: Sequence[Tensor], opts: Any = None) -> MscommWork:
        op = opts.reduceOp if opts is not None else dist.ReduceOp.SUM
        bodies = [self._allreduce_one(t, op, "allreduce_coalesced") for t in tensors]
        return self._run(opts, lambda s: [b(s) for b in bodies] and None, list(tensors))

    def reduce(self, tensors: Any, opts: Any = None) -> MscommWork:
        t = _single(tensors, "reduce")
        _check_device(t)
        root = opts.rootRank if opts is not None else 0
        red = wire.reduction("reduce", t.dtype, opts.reduceOp if opts is not None else dist.ReduceOp.SUM)
        comm = self._comm
        is_root = comm.rank == root
        out = _Staged(t, red.encoding) if is_root else None
        src = out.wire if is_root else _as_wire(t, red.encoding)

        def body(seconds: float) -> None:
            if red.local is None:
                comm.reduce(src, root, red.op, timeout=seconds)
            else:
                everyone = torch.empty(comm.size * src.numel(), dtype=src.dtype)
                comm.allgather(src, out=everyone, timeout=seconds)
                if is_root:
                    out.wire.copy_(wire.fold(red.local, everyone, comm.size))
            if is_root:
                out.finish()

        return self._run(opts, body, [t])

    def _reduce_scatter_flat(self, out: Tensor, src_parts: Sequence[Tensor], op: Any, what: str
                             ) -> Callable[[float], None]:
        """``src_parts`` (size blocks, rank order) are reduced across ranks; this rank's block goes to ``out``."""
        _check_device(out)
        red = wire.reduction(what, out.dtype, op)
        if any(p.dtype != out.dtype for p in src_parts):
            raise InvalidArgument(f"mscomm backend: {what}: inputs and output must share one dtype ({out.dtype})")
        src = torch.cat([_as_wire(p, red.encoding) for p in src_parts]) if len(src_parts) != 1 else \
            _as_wire(src_parts[0], red.encoding)
        dst = _Staged(out, red.encoding, keep_contents=False)
        comm = self._comm

        def body(seconds: float) -> None:
            if red.local is None:
                comm.reduce_scatter(src, red.op, out=dst.wire, timeout=seconds)
            else:
                everyone = torch.empty(comm.size * src.numel(), dtype=src.dtype)
                comm.allgather(src, out=everyone, timeout=seconds)
                total = wire.fold(red.local, everyone, comm.size)
                dst.wire.copy_(total.view(comm.size, -1)[comm.rank])
            dst.finish()

        return body

    def reduce_scatter(self, outputs: Sequence[Tensor], input_lists: Sequence[Sequence[Tensor]],
                       opts: Any = None) -> MscommWork:
        out, parts = _single(outputs, "reduce_scatter"), _single(input_lists, "reduce_scatter")
        if len(parts) != self._comm.size or any(p.numel() != out.numel() for p in parts):
            raise InvalidArgument(f"mscomm backend: reduce_scatter needs {self._comm.size} input tensors of "
                                  f"{out.numel()} elements (the output's), got {[p.numel() for p in parts]}")
        body = self._reduce_scatter_flat(out, parts, opts.reduceOp, "reduce_scatter")
        return self._run(opts, body, [out])

    def _reduce_scatter_single_body(self, out: Tensor, inp: Tensor, op: Any, what: str) -> Callable[[float], None]:
        if inp.numel() != out.numel() * self._comm.size:
            raise InvalidArgument(f"mscomm backend: {what}: input has {inp.numel()} elements, expected "
                                  f"{self._comm.size} x {out.numel()} (group size x output)")
        return self._reduce_scatter_flat(out, [inp], op, what)

    def reduce_scatter_single(self, output: Tensor, input: Tensor, opts: Any = None) -> MscommWork:  # noqa: A002
        body = self._reduce_scatter_single_body(output, input, opts.reduceOp, "reduce_scatter_tensor")
        return self._run(opts, body, [output])

    _reduce_scatter_base = reduce_scatter_single

    def reduce_scatter_single_coalesced(self, outputs: Sequence[Tensor], inputs: Sequence[Tensor],
                                        opts: Any = None) -> MscommWork:
        bodies = [self._reduce_scatter_single_body(o, i, opts.reduceOp, "reduce_scatter_tensor_coalesced")
                  for o, i in zip(outputs, inputs)]
        return self._run(opts, lambda s: [b(s) for b in bodies] and None, list(outputs))

    reduce_scatter_tensor_coalesced = reduce_scatter_single_coalesced

    # -- data movement ------------------------------------------------------------------------
    def broadcast(self, tensors: Any, opts: Any = None) -> MscommWork:
        t = _single(tensors, "broadcast")
        _check_device(t)
        root = opts.rootRank if opts is not None else 0
        buf = _Staged(t, wire.movement(t.dtype))
        comm = self._comm

        def body(seconds: float) -> None:
            comm.broadcast(buf.wire, root, timeout=seconds)
            if comm.rank != root:
                buf.finish()

        return self._run(opts, body, [t])

    def _allgather_body(self, outputs: Sequence[Tensor], inp: Tensor, what: str) -> Callable[[float], None]:
        _check_device(inp)
        size = self._comm.size
        if len(outputs) != size or any(o.numel() != inp.numel() or o.dtype != inp.dtype for o in outputs):
            raise InvalidArgument(f"mscomm backend: {what} needs {size} output tensors of {inp.numel()} x {inp.dtype} "
                                  f"(the input's), got {[(o.numel(), o.dtype) for o in outputs]}")
        enc = wire.movement(inp.dtype)
        src = _as_wire(inp, enc)
        comm = self._comm

        def body(seconds: float) -> None:
            flat = torch.empty(size * src.numel(), dtype=src.dtype)
            comm.allgather(src, out=flat, timeout=seconds)
            _unpack(flat, enc, outputs)

        return body

    def allgather(self, output_lists: Sequence[Sequence[Tensor]], inputs: Sequence[Tensor],
                  opts: Any = None) -> MscommWork:
        outputs = _single(output_lists, "allgather")
        body = self._allgather_body(outputs, _single(inputs, "allgather"), "allgather")
        return self._run(opts, body, list(outputs))

    def allgather_coalesced(self, output_lists: Sequence[Sequence[Tensor]], inputs: Sequence[Tensor],
                            opts: Any = None) -> MscommWork:
        """torch's layout: ``output_lists[r][i]`` receives rank r's ``inputs[i]`` (one list per rank)."""
        comm, inputs = self._comm, list(inputs)
        outputs = [list(o) for o in output_lists]
        for t in [*inputs, *(t for o in outputs for t in o)]:
            _check_device(t)
        shapes = [(t.numel(), t.dtype) for t in inputs]
        if len(outputs) != comm.size or any([(t.numel(), t.dtype) for t in o] != shapes for o in outputs):
            raise InvalidArgument(
                f"mscomm backend: all_gather_coalesced needs output_tensor_lists of {comm.size} lists (one per rank), "
                f"each matching input_tensor_list {[(n, str(d)) for n, d in shapes]}; got "
                f"{[[(t.numel(), str(t.dtype)) for t in o] for o in outputs]}")
        # Every input as bytes, concatenated: one allgather; rank r's block holds its inputs in order.
        parts = [wire.movement(t.dtype).to_wire(t.contiguous().view(-1)).view(torch.uint8) for t in inputs]
        src = torch.cat(parts) if parts else torch.empty(0, dtype=torch.uint8)

        def body(seconds: float) -> None:
            flat = torch.empty(comm.size * src.numel(), dtype=torch.uint8)
            comm.allgather(src, out=flat, timeout=seconds)
            for r, block in enumerate(flat.view(comm.size, -1) if src.numel() else [flat] * comm.size):
                offset = 0
                for t, part in zip(outputs[r], parts):
                    n, piece = part.numel(), block[offset:offset + part.numel()]
                    if piece.storage_offset() % t.element_size():  # a byte view must be aligned to become a t.dtype view
                        piece = piece.clone()
                    t.copy_(piece.view(t.dtype).view(t.shape))
                    offset += n

        return self._run(opts, body, [t for o in outputs for t in o])

    def _all_gather_single_body(self, output: Tensor, inp: Tensor, what: str) -> Callable[[float], None]:
        _check_device(inp)
        _check_device(output)
        if output.dtype != inp.dtype or output.numel() != inp.numel() * self._comm.size:
            raise InvalidArgument(f"mscomm backend: {what}: output has {output.numel()} x {output.dtype}, expected "
                                  f"{self._comm.size} x {inp.numel()} x {inp.dtype} (group size x input)")
        enc = wire.movement(inp.dtype)
        src = _as_wire(inp, enc)
        dst = _Staged(output, enc, keep_contents=False)
        comm = self._comm

        def body(seconds: float) -> None:
            comm.allgather(src, out=dst.wire, timeout=seconds)
            dst.finish()

        return body

    def all_gather_single(self, output: Tensor, input: Tensor, opts: Any = None) -> MscommWork:  # noqa: A002
        return self._run(opts, self._all_gather_single_body(output, input, "all_gather_into_tensor"), [output])

    _allgather_base = all_gather_single

    def all_gather_single_coalesced(self, outputs: Sequence[Tensor], inputs: Sequence[Tensor],
                                    opts: Any = None) -> MscommWork:
        bodies = [self._all_gather_single_body(o, i, "all_gather_into_tensor_coalesced")
                  for o, i in zip(outputs, inputs)]
        return self._run(opts, lambda s: [b(s) for b in bodies] and None, list(outputs))

    allgather_into_tensor_coalesced = all_gather_single_coalesced

    def gather(self, output_lists: Sequence[Sequence[Tensor]], inputs: Sequence[Tensor],
               opts: Any = None) -> MscommWork:
        inp = _single(inputs, "gather")
        _check_device(inp)
        comm = self._comm
        root = opts.rootRank
        outputs = list(output_lists[0]) if comm.rank == root else []
        if comm.rank == root and (len(outputs) != comm.size or any(o.numel() != inp.numel() for o in outputs)):
            raise InvalidArgument(f"mscomm backend: gather needs {comm.size} output tensors of {inp.numel()} elements "
                                  "on the root")
        enc = wire.movement(inp.dtype)
        src = _as_wire(inp, enc)

        def body(seconds: float) -> None:
            flat = torch.empty(comm.size * src.numel(), dtype=src.dtype) if comm.rank == root else None
            comm.gather(src, root, out=flat, timeout=seconds)
            if comm.rank == root:
                _unpack(flat, enc, outputs)

        return self._run(opts, body, outputs)

    def scatter(self, outputs: Sequence[Tensor], input_lists: Sequence[Sequence[Tensor]],
                opts: Any = None) -> MscommWork:
        out = _single(outputs, "scatter")
        _check_device(out)
        comm = self._comm
        root = opts.rootRank
        enc = wire.movement(out.dtype)
        src = None
        if comm.rank == root:
            parts = list(input_lists[0])
            if len(parts) != comm.size or any(p.numel() != out.numel() for p in parts):
                raise InvalidArgument(f"mscomm backend: scatter needs {comm.size} input tensors of {out.numel()} "
                                      "elements on the root")
            src = torch.cat([_as_wire(p, enc) for p in parts])
        dst = _Staged(out, enc, keep_contents=False)

        def body(seconds: float) -> None:
            comm.scatter(src, root, out=dst.wire, timeout=seconds)
            dst.finish()

        return self._run(opts, body, [out])

    def all_to_all_single(self, output: Tensor, input: Tensor, output_split_sizes: Sequence[int],  # noqa: A002
                          input_split_sizes: Sequence[int], opts: Any = None) -> MscommWork:
        fast = self._fast_all_to_all(output, input, output_split_sizes, input_split_sizes, opts)
        if fast is not None:
            return fast
        _check_device(input)
        _check_device(output)
        comm = self._comm
        if output.dtype != input.dtype:
            raise InvalidArgument(f"mscomm backend: all_to_all_single: output is {output.dtype}, input {input.dtype}")
        enc = wire.movement(input.dtype)
        src = _as_wire(input, enc)
        dst = _Staged(output, enc, keep_contents=False)
        send = self._splits("input", input, input_split_sizes, enc.per_element)
        recv = self._splits("output", output, output_split_sizes, enc.per_element)

        # No split sizes (torch's "equal split") takes the faster equal-block alltoall. Decided from
        # the arguments, not the counts: every rank must make the same choice.
        even = not input_split_sizes and not output_split_sizes

        def body(seconds: float) -> None:
            if even:
                comm.alltoall(src, out=dst.wire, timeout=seconds)
            else:
                comm.alltoallv(src, send, recv, out=dst.wire, timeout=seconds)
            dst.finish()

        return self._run(opts, body, [output])

    alltoall_base = all_to_all_single

    def _splits(self, which: str, t: Tensor, rows: Sequence[int], scale: int) -> list[int]:
        """_row_counts, or InvalidArgument naming what does not fit."""
        size = self._comm.size
        counts = _row_counts(t, rows, size, scale)
        if counts is not None:
            return counts
        if not rows:
            raise InvalidArgument(f"mscomm backend: all_to_all_single: {which} of shape {tuple(t.shape)} does not "
                                  f"split into {size} equal parts; pass {which}_split_sizes")
        raise InvalidArgument(f"mscomm backend: all_to_all_single: {which}_split_sizes {[int(r) for r in rows]} must "
                              f"hold {size} non-negative row counts summing to dim 0 of the {which} "
                              f"({t.shape[0] if t.dim() else 1})")

    def alltoall(self, outputs: Sequence[Tensor], inputs: Sequence[Tensor], opts: Any = None) -> MscommWork:
        comm = self._comm
        if len(outputs) != comm.size or len(inputs) != comm.size:
            raise InvalidArgument(f"mscomm backend: all_to_all needs {comm.size} input and output tensors")
        dtypes = {t.dtype for t in [*outputs, *inputs]}
        if len(dtypes) != 1:
            raise InvalidArgument(f"mscomm backend: all_to_all tensors must share one dtype, got {sorted(map(str, dtypes))}")
        enc = wire.movement(inputs[0].dtype)
        src = torch.cat([_as_wire(t, enc) for t in inputs])
        send = [t.numel() * enc.per_element for t in inputs]
        recv = [t.numel() * enc.per_element for t in outputs]

        def body(seconds: float) -> None:
            flat = torch.empty(sum(recv), dtype=src.dtype)
            comm.alltoallv(src, send, recv, out=flat, timeout=seconds)
            _unpack(flat, enc, outputs)

        return self._run(opts, body, list(outputs))

    def barrier(self, opts: Any = None) -> MscommWork:
        comm = self._comm

        def body(seconds: float) -> None:
            try:
                comm.barrier(timeout=seconds)
            except Timeout as e:
                raise Timeout(f"mscomm backend: Timed out in barrier on rank {comm.rank} after {seconds:g} s: "
                              f"{_silent(str(e))}; check that every rank of the group calls barrier "
                              f"({e})") from e

        return self._run(opts, body, [])

    def monitored_barrier(self, timeout: timedelta | float | None = None, wait_all_ranks: bool = False) -> None:
        """gloo's ``monitored_barrier`` through the group's store: every rank checks in with rank 0,
        which names the ranks that did not come within ``timeout``; the messages are gloo's.
        (``dist.monitored_barrier`` itself refuses every backend but gloo; this serves
        ``group.monitored_barrier(...)`` called on the group.)"""
        if self._store is None:
            raise InvalidArgument("mscomm backend: monitored_barrier needs the group's store (a group made by "
                                  "dist.init_process_group / dist.new_group)")
        seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else \
            (self._timeout if timeout is None else float(timeout))
        ms = int(seconds * 1000)
        store, me, size = self._store, self._comm.rank, self._comm.size
        key = f"mscomm/monitored_barrier/{self._monitored}"
        self._monitored += 1
        if me != 0:
            store.set(f"{key}/{me}", b"1")
            if not _store_wait(store, f"{key}/ack", seconds):
                raise RuntimeError(f"Rank {me} successfully reached monitoredBarrier, but received errors while waiting "
                                   "for send/recv from rank 0. Please check rank 0 logs for faulty rank.")
            return
        deadline, missing = time.monotonic() + seconds, []
        for r in range(1, size):
            left = deadline - time.monotonic()
            if left <= 0 and not wait_all_ranks:
                raise RuntimeError(f"Rank 0 timed out in monitoredBarrier after {ms} ms. Ranks "
                                   f"{', '.join(map(str, range(r, size)))} have not been processed")
            if not _store_wait(store, f"{key}/{r}", max(left, 0.0)):
                if not wait_all_ranks:
                    raise RuntimeError(f"[Rank 0]: Rank {r} failed to pass monitoredBarrier in {ms} ms")
                missing.append(r)
        if missing:
            raise RuntimeError(f"[Rank 0]: Ranks {', '.join(map(str, missing))} failed to pass monitoredBarrier in "
                               f"{ms} ms")
        store.set(f"{key}/ack", b"1")

    # -- life cycle ---------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Finish pending work, then close the communicator (collective: doubles as an exit barrier,
        so the rank hosting the store does not leave while others still use it)."""
        if self._comm.closed:
            return
        self._flush_p2p()
        self._drain()
        if self._worker is not None:
            self._worker.shutdown(wait=True)
            self._worker = None
        if self._store is not None:
            try:  # so that a rank still using the group hears that this one left (see executor.py)
                self._store.set(LEFT_KEY.format(self._comm.rank), b"1")
            except Exception:  # noqa: BLE001 - the store's host may have gone already
                pass
        self._comm.close()

    def abort(self) -> None:
        """Unblock every pending operation of this group with ``mscomm.Aborted``; the group is unusable after."""
        if self._comm.closed:
            return
        self._comm.abort("process group aborted")
        if self._worker is not None:
            self._worker.shutdown(wait=True)
            self._worker = None
        self._comm.close()
