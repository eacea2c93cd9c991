"""``mscomm-sigma-train``: train the bundled Sigma MoE language model.

Starts its own ranks (``--ranks N``) or runs as one rank under torchrun, mscomm-run or mpirun.
Every setting is checked before any rank starts; bad input exits with status 2 and one line that
says what is wrong.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from mscomm.sigma.config import DEFAULT_TOPK_SCHEDULE, Config, SigmaError

PROG = "mscomm-sigma-train"


def build_parser() -> argparse.ArgumentParser:
    d = Config()
    p = argparse.ArgumentParser(prog=PROG, description="Train the Sigma MoE byte-level LM with expert and data "
                                "parallelism over torch.distributed (backend mscomm by default).",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    a = p.add_argument
    g = p.add_argument_group("layout")
    g.add_argument("--ranks", type=int, default=None, help="ranks to start here (default 1; under a launcher: its world size)")
    g.add_argument("--ep", type=int, default=d.ep, help="expert-parallel size (experts sharded over blocks of EP ranks)")
    g.add_argument("--backend", default=d.backend, choices=["mscomm", "gloo", "nccl"])
    g.add_argument("--grad-sync", default=d.grad_sync, choices=["buckets", "ddp"],
                   help="dense-gradient sync: bucketed allreduce or DistributedDataParallel")
    g.add_argument("--bucket-mb", type=float, default=d.bucket_mb)
    g.add_argument("--timeout", type=float, default=d.timeout, help="seconds any collective may block")
    m = p.add_argument_group("model")
    m.add_argument("--layers", type=int, default=d.layers)
    m.add_argument("--dim", type=int, default=d.dim)
    m.add_argument("--q-heads", type=int, default=d.q_heads)
    m.add_argument("--k-heads", type=int, default=d.k_heads)
    m.add_argument("--v-heads", type=int, default=d.v_heads)
    m.add_argument("--head-dim", type=int, default=d.head_dim)
    m.add_argument("--q-aug", type=float, default=d.q_aug, help="augmented-Q width as a multiple of --dim")
    m.add_argument("--experts", type=int, default=d.experts)
    m.add_argument("--expert-hidden", type=int, default=d.expert_hidden)
    m.add_argument("--seq", type=int, default=d.seq)
    m.add_argument("--dtype", default=d.dtype, choices=["float32", "float64"])
    m.add_argument("--init-std", type=float, default=d.init_std)
    r = p.add_argument_group("routing")
    r.add_argument("--topk-schedule", default=d.topk_schedule,
                   help="per-layer top-k stages 'k0,k1,..@END;..' (END: step, or fraction with a dot), then "
                        f"top-1; '1' = top-1 from the start (default {DEFAULT_TOPK_SCHEDULE!r})")
    r.add_argument("--balance", default=d.balance, choices=["global", "micro"],
                   help="load-balancing loss over the global batch (counts all-reduced) or per micro-batch")
    r.add_argument("--micro-batch", type=int, default=d.micro_batch, help="sequences per micro-batch for --balance micro")
    r.add_argument("--lb-coeff", type=float, default=d.lb_coeff)
    o = p.add_argument_group("optimization")
    o.add_argument("--steps", type=int, default=d.steps)
    o.add_argument("--batch", type=int, default=d.batch, help="global batch in sequences (split over the ranks)")
    o.add_argument("--lr", type=float, default=d.lr)
    o.add_argument("--warmup", type=int, default=d.warmup)
    o.add_argument("--weight-decay", type=float, default=d.weight_decay)
    o.add_argument("--clip", type=float, default=d.clip)
    o.add_argument("--seed", type=int, default=d.seed)
    io = p.add_argument_group("data and output")
    io.add_argument("--data", default=None, help="a text file (default: text shipped with Python)")
    io.add_argument("--val-seqs", type=int, default=d.val_seqs)
    io.add_argument("--val-every", type=int, default=d.val_every)
    io.add_argument("--out", default=None, help="output directory (default: the --resume directory, else sigma-run)")
    io.add_argument("--resume", default=None, help="continue from the checkpoint in this directory")
    io.add_argument("--stop-at", type=int, default=None, help="checkpoint and stop after this step")
    io.add_argument("--ckpt-every", type=int, default=d.ckpt_every, help="also checkpoint every N steps")
    io.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def config_from_args(args: argparse.Namespace, world: int | None) -> Config:
    fields = {k: v for k, v in vars(args).items() if k in Config.__dataclass_fields__ and k not in ("ranks", "out")}
    out = args.out or args.resume or "sigma-run"
    return Config(**fields, ranks=world or args.ranks or 1, out=out, progress=not args.no_progress)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    from mscomm.sigma.launch import CHILD_ENV, launched_world, spawn
    found = launched_world()
    launched = found[2] if found is not None else None
    if launched is not None and args.ranks not in (None, launched):
        print(f"{PROG}: error: --ranks={args.ranks} but the launcher started {launched} ranks", file=sys.stderr)
        return 2
    cfg = config_from_args(args, launched)
    try:
        if launched is None:
            from mscomm.sigma.preflight import preflight
            preflight(cfg)
            if cfg.ranks > 1:
                return spawn(argv, cfg.ranks)
        from mscomm.sigma.train import run_rank
        summary = run_rank(cfg)
    except SigmaError as e:
        if os.environ.get(CHILD_ENV) != "1" or os.environ.get("RANK", "0") == "0":
            print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    if summary:
        val = summary["val"][-1]["loss"] if summary["val"] else float("nan")
        print(f"{PROG}: {summary['steps_done']} steps, last train loss {summary['train_loss'][-1]:.4f}, "
              f"val loss {val:.4f} (unigram baseline {summary['unigram_val_nats']:.4f}); "
              f"{summary['mean']['tokens_per_s']:.0f} tokens/s, comm {summary['mean']['comm_s_per_step'] * 1e3:.1f} "
              f"ms/step; wrote {os.path.join(cfg.out, 'summary.json')}")
    return 0


def child_exit(code: int) -> None:
    """End a rank started by ``--ranks``: flush and leave without the interpreter's teardown (which
    took ~10 s per rank on a loaded machine with torch loaded; every resource is released by then)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
