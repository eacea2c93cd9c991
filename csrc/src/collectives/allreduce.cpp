// Allreduce and reduce. Words used below:
//   block    - the part of the buffer one pass handles; it fits one scratch slot.
//   segment  - a rank's share of a block (block split evenly, remainder spread over ranks).
//   sync     - every same-host rank signals every other and waits for all of them.
//
// oneshot (one host, small): copy the input into my slot, sync, every rank reduces all slots
//   into its output in rank order. One sync per call; slots alternate between calls.
// rsag (one host, large): per block: copy the other ranks' segments of my input into my slot,
//   sync, reduce my segment from my input and every peer's slot into my slot, sync, copy every
//   segment out of its owner's slot (for reduce: only the root). Two syncs per block; blocks
//   alternate between two slots so the next copy-in overlaps nobody's reads.
// ring (any transport, over pipes): N-1 reduce-scatter steps then N-1 allgather steps; each step
//   sends one segment to the next rank while receiving one from the previous, chunk by chunk.
// direct (one host, large; registered buffers or single-copy reads): sync; reduce my segment
//   straight from every rank's input into my output; sync; copy every other segment out of its
//   owner's output; sync. No staging copy.
// hier (several hosts, equal ranks per host): rsag within each host with, between its halves,
//   a ring allreduce across hosts among the ranks of equal local index (see hierarchical()).
// chain (reduce across hosts): ranks form a chain ending at the root; each adds its input to the
//   partial sums flowing through it, chunk by chunk.
#include <algorithm>
#include <cstring>

#include "call.hpp"
#include "mscomm/collectives.hpp"
#include "mscomm/reduce.hpp"
#include "pipes.hpp"
#include "selection.hpp"
#include "staged.hpp"

namespace mscomm {

namespace {

void oneshot(Call& c, const char* input, char* output, size_t count, ReduceOp op) {
  c.publish_descriptor();  // before the phase advances: the entry follows the phase
  const uint64_t phase = c.ctx.shm_phase++;
  std::memcpy(c.ctx.shm_slot(c.rank, phase), input, count * c.es);
  c.sync_local();
  c.check_local_descriptors();
  std::vector<const void*> srcs(c.size);
  for (int r = 0; r < c.size; ++r) srcs[r] = c.ctx.shm_slot(r, phase);
  reduce(output, srcs.data(), c.size, count, static_cast<DataType>(c.desc.dtype), op);
}

void direct(Call& c, const char* input, char* output, size_t count, ReduceOp op) {
  const int n = c.size, me = c.rank;
  auto lo = [&](int r) { return seg_begin(count, n, r) * c.es; };
  auto bytes = [&](int r) { return lo(r + 1) - lo(r); };
  c.direct_begin(input, count * c.es, output, count * c.es);
  c.reduce_peers(lo(me), bytes(me), output + lo(me), op);
  c.sync_local();
  for (int r = 0; r < n; ++r)
    if (r != me) c.read_peer(r, 1, lo(r), bytes(r), output + lo(r));
  c.direct_end();
}

// Ring allreduce among `members` (any transport), in place when output == input.
void ring(Call& c, const std::vector<int>& members, const char* input, char* output, size_t count, ReduceOp op) {
  const int n = static_cast<int>(members.size());
  const int me = static_cast<int>(std::find(members.begin(), members.end(), c.rank) - members.begin());
  const int next = members[(me + 1) % n], prev = members[(me + n - 1) % n];
  const DataType dtype = static_cast<DataType>(c.desc.dtype);
  const ReduceOp pairwise = op == ReduceOp::Avg ? ReduceOp::Sum : op;
  if (output != input) std::memcpy(output, input, count * c.es);
  auto seg = [&](int s, size_t* bytes) {
    s = ((s % n) + n) % n;
    const size_t lo = seg_begin(count, n, s), hi = seg_begin(count, n, s + 1);
    *bytes = (hi - lo) * c.es;
    return output + lo * c.es;
  };
  Pipes pipes(c);
  for (int t = 0; t < n - 1; ++t) {  // reduce-scatter
    size_t sb, rb;
    char* send = seg(me - t, &sb);
    char* recv = seg(me - t - 1, &rb);
    const bool last = t == n - 2;
    pipes.exchange(next, send, sb, prev, recv, rb, [&](char* dst, const char* slot, size_t len) {
      const void* srcs[2] = {dst, slot};
      reduce(dst, srcs, 2, len / c.es, dtype, pairwise);
      if (last && op == ReduceOp::Avg) divide(dst, len / c.es, dtype, n);
    }, t == 0 ? &c.desc : nullptr, t == 0 ? &c.desc : nullptr);
  }
  for (int t = 0; t < n - 1; ++t) {  // allgather
    size_t sb, rb;
    char* send = seg(me + 1 - t, &sb);
    char* recv = seg(me - t, &rb);
    pipes.exchange(next, send, sb, prev, recv, rb, nullptr, nullptr);
  }
  pipes.finish();  // the caller may reuse its buffer on return
}

// Hierarchical (several hosts with the same number L > 1 of ranks each): within each host an
// rsag over shared memory; between the host's reduce-scatter and allgather, local rank i runs a
// ring allreduce of its segment with local rank i of every other host, over TCP. Each rank
// sends 2(H-1)/H of 1/L of the message across hosts; avg divides once, by N, at the end.
void hierarchical(Call& c, const char* input, char* output, size_t count, ReduceOp op) {
  const ReduceOp sum_or_op = op == ReduceOp::Avg ? ReduceOp::Sum : op;
  const std::vector<int>& peers = c.ctx.layout.same_index[c.rank];
  const DataType dtype = static_cast<DataType>(c.desc.dtype);
  rsag(c, c.comm.local_ranks(), input, output, count, sum_or_op, -1, [&](char* segment, size_t n) {
    ring(c, peers, segment, segment, n, sum_or_op);
    if (op == ReduceOp::Avg) divide(segment, n, dtype, c.size);
  });
}

}  // namespace

void allreduce(Communicator& comm, const void* input, void* output, size_t count, const CollectiveOptions& opts) {
  const size_t bytes = count * dtype_size(opts.dtype);
  MSCOMM_CHECK_ARG(count == 0 || (input && output), "allreduce: null buffer with a non-zero count");
  check_no_overlap("allreduce", input, bytes, output, bytes);
  auto in = static_cast<const char*>(input);
  auto out = static_cast<char*>(output);
  if (comm.size() == 1) check_requested(comm, Collective::Allreduce, opts.algorithm);  // one rank: no row runs, but the name must exist
  if (comm.size() == 1) {
    if (in != out && count) std::memmove(out, in, bytes);
    return;
  }
  const Selected s = select({comm, Collective::Allreduce, bytes, direct_reads(comm, input, bytes, output, bytes),
                             input == output}, opts.algorithm);
  if (s.plan) return run_plan(comm, *s.plan, input, output, count, opts);
  const Algo algorithm = s.algo();
  run_collective(comm, Collective::Allreduce, count, opts.dtype, opts.op, -1, opts.timeout_s, algorithm, [&](Call& c) {
    c.output_bytes(bytes);
    if (algorithm == Algo::OneShot) oneshot(c, in, out, count, opts.op);
    else if (algorithm == Algo::Direct) direct(c, in, out, count, opts.op);
    else if (algorithm == Algo::Rsag) rsag(c, comm.local_ranks(), in, out, count, opts.op, -1);
    else if (algorithm == Algo::Hier) hierarchical(c, in, out, count, opts.op);
    else ring(c, c.ctx.layout.all, in, out, count, opts.op);
  });
}

}  // namespace mscomm
