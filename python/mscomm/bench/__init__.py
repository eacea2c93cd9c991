"""``mscomm-bench``: nccl-tests style benchmarks of mscomm collectives, side by side with gloo and MPI."""
