// Alltoall.
//
// staged (one host): per block of the per-peer count, copy the blocks meant for other ranks
//   into my slot (segment p for rank p), one sync, then copy segment `me` out of every peer's slot.
// pairwise (any transport): N-1 rounds; in round k send to me+k while receiving from me-k,
//   chunk by chunk (pipes.hpp).
// direct (one host, large; registered buffers or single-copy reads): sync, take block `me`
//   straight out of every rank's input, sync.
#include <algorithm>
#include <cstring>

#include "call.hpp"
#include "mscomm/collectives.hpp"
#include "pipes.hpp"
#include "selection.hpp"
#include "staged.hpp"

namespace mscomm {

void alltoall(Communicator& comm, const void* input, void* output, size_t count, const CollectiveOptions& opts) {
  const size_t es = dtype_size(opts.dtype), bytes = count * es;
  const int n = comm.size(), me = comm.rank();
  auto in = static_cast<const char*>(input);
  auto out = static_cast<char*>(output);
  MSCOMM_CHECK_ARG(count == 0 || (in && out), "alltoall: null buffer with a non-zero count");
  MSCOMM_CHECK_ARG(in != out || count == 0, "alltoall: input and output must be different buffers");
  check_no_overlap("alltoall", input, bytes * n, output, bytes * n);
  if (n == 1) check_requested(comm, Collective::Alltoall, opts.algorithm);  // one rank: no row runs, but the name must exist
  if (n == 1) {
    if (bytes) std::memcpy(out, in, bytes);
    return;
  }
  const Algo algorithm =
      select({comm, Collective::Alltoall, bytes, direct_reads(comm, in, bytes * n, out, bytes * n)}, opts.algorithm)
          .algo();
  run_collective(comm, Collective::Alltoall, count, opts.dtype, ReduceOp::Sum, -1, opts.timeout_s, algorithm, [&](Call& c) {
    c.output_bytes(bytes * n);
    if (algorithm == Algo::Direct) {
      c.direct_begin(in, bytes * n, out, bytes * n);
      c.copy_out(out + me * bytes, in + me * bytes, bytes);
      for (int p = 0; p < n; ++p)
        if (p != me) c.read_peer(p, 0, me * bytes, bytes, out + p * bytes);
      c.direct_end();
      return;
    }
    if (algorithm == Algo::Staged) {
      c.copy_out(out + me * bytes, in + me * bytes, bytes);
      staged_blocks(c, in, count, [&](size_t off, size_t len, uint64_t phase, size_t seg) {
        for (int p = 0; p < n; ++p)
          if (p != me) c.copy_out(out + p * bytes + off * es, c.ctx.shm_slot(p, phase) + me * seg, len * es);
      });
      return;
    }
    std::vector<size_t> offs(n), lens(n, bytes);
    for (int p = 0; p < n; ++p) offs[p] = p * bytes;
    pairwise(c, in, offs, lens, out, offs, lens);
  });
}

}  // namespace mscomm
