"""One rank of ``mscomm-bench --compare deepspeed``: DeepSpeed's CPU shared-memory allreduce.

Runs in DeepSpeed's venv (through run.py) under mscomm-run, with DS_ACCELERATOR=cpu, LOCAL_SIZE =
the world size (else the op turns itself off), MASTER_ADDR/MASTER_PORT (the op names its
segments after them) and OMP_NUM_THREADS=1 (2 threads are 10-100x slower on 2 cores). The call is
``torch.ops.deepspeed.inference_all_reduce_``, what ``deepspeed.comm.inference_all_reduce`` runs on
CPU (plain ``deepspeed.comm.all_reduce`` is gloo). Repetitions are aligned and their times
gathered through a gloo process group, as in mscomm's torch worker.
"""

from __future__ import annotations

import json
import os
import sys

from mscomm.bench.specs import buffers
from mscomm.bench.timing import arguments, gloo_timer, iterations, np_dtype, row


def main(argv: list[str] | None = None) -> int:
    args = arguments("mscomm.bench.peers.deepspeed_worker").parse_args(argv)
    import torch
    import torch.distributed as dist
    from deepspeed.ops.op_builder.cpu import ShareMemCommBuilder

    rank, size = int(os.environ["MSCOMM_RANK"]), int(os.environ["MSCOMM_WORLD_SIZE"])
    timer = gloo_timer(rank, size, args.reps)
    ShareMemCommBuilder().load().initialize(size, rank)
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[args.dtype]
    rows = []
    for nbytes in args.sizes:
        b = buffers("allreduce", nbytes, rank, size, np_dtype("float32" if args.dtype == "bfloat16" else args.dtype))
        x = torch.from_numpy(b.x).to(torch_dtype)
        iters = iterations(args, nbytes)
        t = timer.measure(lambda: torch.ops.deepspeed.inference_all_reduce_(x), iters, args.warmup)
        rows.append(row("allreduce", nbytes, x.numel(), args, size, t, None))
    dist.destroy_process_group()
    if rank == 0:
        import deepspeed

        with open(args.out, "w") as f:
            json.dump({"backend": "deepspeed", "library": f"DeepSpeed {deepspeed.__version__} shm", "rows": rows}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
