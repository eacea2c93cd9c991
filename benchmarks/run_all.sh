#!/usr/bin/env bash
# Re-measures every figure in benchmarks/RESULTS.md (about 25 minutes on a 2-core machine without
# the peers; the peers add roughly as much again, most of it oneCCL and DeepSpeed at 4 ranks).
# The default runs compare with every installed peer (--compare all): gloo, MPICH, and openmpi,
# impi, oneccl, deepspeed from benchmarks/install_peers.sh (run it first; a peer that is not
# installed is skipped with a note in the table). Each default table is one run whose repetitions
# are split over two passes in alternating order (mscomm-bench --passes, see its docstring). At 4
# ranks on 2 cores oneCCL and DeepSpeed take 5-20 ms per small call, so every backend there runs at
# most 100 iterations per repetition (--max-iters; the default by size goes up to 1000).
set -euo pipefail
cd "$(dirname "$0")/.."
out=benchmarks/results
for n in 2 4; do
  cap=(); [ "$n" -gt 2 ] && cap=(--max-iters 100)
  for c in allreduce allgather alltoall broadcast; do
    mscomm-bench $c -n $n --min 4K --max 64M --reps 7 --check --compare all "${cap[@]}" \
      --json $out/$c-${n}ranks.json --plot $out/$c-${n}ranks.png > $out/$c-${n}ranks.txt
  done
  mscomm-bench barrier -n $n --reps 7 --check --compare all "${cap[@]}" --json $out/barrier-${n}ranks.json \
    > $out/barrier-${n}ranks.txt
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
