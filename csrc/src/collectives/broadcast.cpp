// Broadcast.
//
// staged (one host): per block, the root copies into its shm slot, one sync, every other rank
//   copies out of it.
// chain (any transport): ranks form a chain from the root; each chunk is received from the
//   previous rank and forwarded to the next, so the chain is pipelined.
// direct (one host; registered buffers): sync, every rank copies from the root's buffer, sync.
#include <algorithm>
#include <cstring>

#include "call.hpp"
#include "mscomm/collectives.hpp"
#include "pipes.hpp"
#include "selection.hpp"
#include "staged.hpp"

namespace mscomm {

void broadcast(Communicator& comm, void* buffer, size_t count, const CollectiveOptions& opts) {
  const size_t es = dtype_size(opts.dtype), bytes = count * es;
  const int n = comm.size(), me = comm.rank(), root = opts.root;
  check_root("broadcast", root, n);
  MSCOMM_CHECK_ARG(count == 0 || buffer, "broadcast: null buffer with a non-zero count");
  if (n == 1) check_requested(comm, Collective::Broadcast, opts.algorithm);  // one rank: no row runs, but the name must exist
  if (n == 1) return;
  auto buf = static_cast<char*>(buffer);
  const Algo algorithm =
      select({comm, Collective::Broadcast, bytes, direct_reads(comm, nullptr, 0, buf, bytes), true}, opts.algorithm)
          .algo();
  run_collective(comm, Collective::Broadcast, count, opts.dtype, ReduceOp::Sum, root, opts.timeout_s, algorithm, [&](Call& c) {
    c.output_bytes(bytes);
    if (algorithm == Algo::Direct) {
      c.direct_begin(nullptr, 0, buf, bytes);
      if (me != root) c.read_peer(root, 1, 0, bytes, buf);
      c.direct_end();
      return;
    }
    if (algorithm == Algo::Staged) {
      staged(c, count, c.ctx.shm_slot_bytes / es,
             [&](size_t off, size_t len, char* slot) {
               if (me == root) std::memcpy(slot, buf + off * es, len * es);
             },
             [&](size_t off, size_t len, uint64_t phase) {
               if (me != root) c.copy_out(buf + off * es, c.ctx.shm_slot(root, phase), len * es);
             });
      return;
    }
    const int pos = (me - root + n) % n, next = (me + 1) % n, prev = (me + n - 1) % n;
    Pipes pipes(c);
    const size_t k = pipes.chunk(), chunks = std::max<size_t>(1, (bytes + k - 1) / k);
    for (size_t i = 0; i < chunks; ++i) {
      const size_t off = i * k, len = std::min(k, bytes - std::min(bytes, off));
      const CallDescriptor* d = i == 0 ? &c.desc : nullptr;
      if (pos > 0) {
        const char* slot = pipes.receive(prev, d);
        std::memcpy(buf + off, slot, len);
        pipes.release(prev);
      }
      if (pos < n - 1) pipes.send(next, buf + off, len, d);
    }
    pipes.finish();
  });
}

}  // namespace mscomm
