// Allgather.
//
// staged (one host): per block, every rank copies its input into its shm slot, one sync, then
//   every rank copies what it needs straight out of the owners' slots. Slots alternate, so one
//   sync per block is enough: a slot is rewritten only after the next sync, which every reader
//   passes only when done reading.
// ring (any transport): N-1 steps; each forwards the segment received last step.
// direct (one host, large; registered buffers or single-copy reads): sync, every rank copies
//   what it needs straight out of the owners' buffers, sync. One copy instead of two.
#include <algorithm>
#include <cstring>

#include "call.hpp"
#include "mscomm/collectives.hpp"
#include "pipes.hpp"
#include "selection.hpp"
#include "staged.hpp"

namespace mscomm {

void allgather(Communicator& comm, const void* input, void* output, size_t count, const CollectiveOptions& opts) {
  const size_t es = dtype_size(opts.dtype), bytes = count * es;
  const int n = comm.size(), me = comm.rank();
  MSCOMM_CHECK_ARG(count == 0 || (input && output), "allgather: null buffer with a non-zero count");
  auto in = static_cast<const char*>(input);
  auto out = static_cast<char*>(output);
  if (in != out + me * bytes) check_no_overlap("allgather", input, bytes, output, bytes * n);
  copy_if_distinct(out + me * bytes, in, bytes);
  if (n == 1) check_requested(comm, Collective::Allgather, opts.algorithm);  // one rank: no row runs, but the name must exist
  if (n == 1) return;
  const Selected s = select({comm, Collective::Allgather, bytes, direct_reads(comm, in, bytes, out, bytes * n),
                             in == out + me * bytes}, opts.algorithm);
  if (s.plan) return run_plan(comm, *s.plan, input, output, count, opts);
  const Algo algorithm = s.algo();
  run_collective(comm, Collective::Allgather, count, opts.dtype, ReduceOp::Sum, -1, opts.timeout_s, algorithm, [&](Call& c) {
    c.output_bytes(bytes * n);
    if (algorithm == Algo::Direct) {
      c.direct_begin(in, bytes, out, bytes * n);
      for (int r = 0; r < n; ++r)
        if (r != me) c.read_peer(r, 0, 0, bytes, out + r * bytes);
      c.direct_end();
      return;
    }
    if (algorithm == Algo::Staged) {
      staged(c, count, c.ctx.shm_slot_bytes / es,
             [&](size_t off, size_t len, char* slot) { std::memcpy(slot, in + off * es, len * es); },
             [&](size_t off, size_t len, uint64_t phase) {
               for (int r = 0; r < n; ++r)
                 if (r != me) c.copy_out(out + r * bytes + off * es, c.ctx.shm_slot(r, phase), len * es);
             });
      return;
    }
    Pipes pipes(c);
    const int next = (me + 1) % n, prev = (me + n - 1) % n;
    for (int t = 0; t < n - 1; ++t) {
      const int s = (me - t + n) % n, r = (me - t - 1 + n) % n;
      pipes.exchange(next, out + s * bytes, bytes, prev, out + r * bytes, bytes, t == 0 ? &c.desc : nullptr,
                     t == 0 ? &c.desc : nullptr);
    }
    pipes.finish();
  });
}

}  // namespace mscomm
