#!/usr/bin/env bash
# Re-measures every figure in benchmarks/RESULTS.md (about 25 minutes on a 2-core machine).
set -euo pipefail
cd "$(dirname "$0")/.."
out=benchmarks/results
for n in 2 4; do
  for c in allreduce allgather alltoall; do
    mscomm-bench $c -n $n --min 4K --max 64M --reps 7 --check --compare gloo,mpi \
      --json $out/$c-${n}ranks.json --plot $out/$c-${n}ranks.png > $out/$c-${n}ranks.txt
  done
  for c in allreduce allgather alltoall; do   # registered buffers: the direct path
    mscomm-bench $c -n $n --min 4K --max 64M --reps 7 --check --register --compare gloo,mpi \
      --json $out/$c-${n}ranks-register.json --plot $out/$c-${n}ranks-register.png > $out/$c-${n}ranks-register.txt
  done
  for c in allreduce alltoall; do
    mscomm-bench $c -n $n --min 4K --max 64M --reps 7 --check --backend torch --compare gloo \
      --json $out/torch-$c-${n}ranks.json > $out/torch-$c-${n}ranks.txt
    mscomm-bench $c -n $n --min 4K --max 64M --reps 7 --check --backend torch --register --compare gloo \
      --json $out/torch-$c-${n}ranks-register.json > $out/torch-$c-${n}ranks-register.txt
  done
done
python benchmarks/memory_bandwidth.py > $out/memory-bandwidth.txt
