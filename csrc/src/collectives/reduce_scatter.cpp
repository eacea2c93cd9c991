// Reduce_scatter.
//
// staged (one host): as alltoall's, then reduce segment `me` of every slot together with my own
//   block, in rank order.
// ring (any transport): N-1 steps; each adds my block to the partial sum received from the
//   previous rank and passes it on; the last step leaves my own block.
// direct (one host, large; registered buffers or single-copy reads): sync, reduce block `me`
//   straight out of every rank's input in rank order, sync.
#include <algorithm>
#include <cstring>

#include "call.hpp"
#include "mscomm/collectives.hpp"
#include "mscomm/reduce.hpp"
#include "pipes.hpp"
#include "selection.hpp"
#include "staged.hpp"

namespace mscomm {

void reduce_scatter(Communicator& comm, const void* input, void* output, size_t count, const CollectiveOptions& opts) {
  const size_t es = dtype_size(opts.dtype), bytes = count * es;
  const int n = comm.size(), me = comm.rank();
  auto in = static_cast<const char*>(input);
  auto out = static_cast<char*>(output);
  MSCOMM_CHECK_ARG(count == 0 || (in && out), "reduce_scatter: null buffer with a non-zero count");
  if (out != in + me * bytes) check_no_overlap("reduce_scatter", input, bytes * n, output, bytes);
  const DataType dtype = opts.dtype;
  if (n == 1) check_requested(comm, Collective::ReduceScatter, opts.algorithm);  // one rank: no row runs, but the name must exist
  if (n == 1) {
    if (out != in && bytes) std::memmove(out, in, bytes);
    return;
  }
  const Selected s = select({comm, Collective::ReduceScatter, bytes, direct_reads(comm, in, bytes * n, out, bytes),
                             out == in + me * bytes}, opts.algorithm);
  if (s.plan) return run_plan(comm, *s.plan, input, output, count, opts);
  const Algo algorithm = s.algo();
  run_collective(comm, Collective::ReduceScatter, count, dtype, opts.op, -1, opts.timeout_s, algorithm, [&](Call& c) {
    if (algorithm == Algo::Direct) {
      c.direct_begin(in, bytes * n, out, bytes);
      c.reduce_peers(me * bytes, bytes, out, opts.op);
      c.direct_end();
      return;
    }
    if (algorithm == Algo::Staged) {
      std::vector<const void*> srcs(n);
      staged_blocks(c, in, count, [&](size_t off, size_t len, uint64_t phase, size_t seg) {
        for (int p = 0; p < n; ++p)
          srcs[p] = p == me ? in + me * bytes + off * es : c.ctx.shm_slot(p, phase) + me * seg;
        reduce(out + off * es, srcs.data(), n, len, dtype, opts.op);
      });
      return;
    }
    // Step t sends the partial sum of block me-t-1 (step 0: my input's) and receives the partial
    // of block me-t-2, adds my input's block, keeping it in `out`. The last step leaves block me.
    // In place (out is my input's block me), the partial sums need a buffer of their own: block
    // me is added only at the last step.
    const int next = (me + 1) % n, prev = (me + n - 1) % n;
    const ReduceOp pairwise_op = opts.op == ReduceOp::Avg ? ReduceOp::Sum : opts.op;
    std::vector<char> own;
    if (out == in + me * bytes) own.resize(bytes);
    char* work = own.empty() ? out : own.data();
    Pipes pipes(c);
    for (int t = 0; t < n - 1; ++t) {
      const int sblock = (me - t - 1 + 2 * n) % n, rblock = (me - t - 2 + 2 * n) % n;
      const char* send = t == 0 ? in + sblock * bytes : work;
      const bool last = t == n - 2;
      pipes.exchange(next, send, bytes, prev, work, bytes, [&](char* dst, const char* slot, size_t len) {
        c.ctx.data[next]->wait_sent(c.timeout);  // this chunk of `work` may still be on its way to next
        const size_t off = static_cast<size_t>(dst - work);
        const void* srcs[2] = {slot, in + rblock * bytes + off};
        reduce(dst, srcs, 2, len / es, dtype, pairwise_op);
        if (last && opts.op == ReduceOp::Avg) divide(dst, len / es, dtype, n);
      }, t == 0 ? &c.desc : nullptr, t == 0 ? &c.desc : nullptr);
    }
    pipes.finish();
    if (!own.empty()) std::memcpy(out, work, bytes);
  });
}

}  // namespace mscomm
