// Barrier: dissemination, ceil(log2 N) rounds; in round k every rank exchanges an empty chunk
// with the ranks 2^k away, over shared memory and TCP alike.
#include "call.hpp"
#include "mscomm/collectives.hpp"
#include "pipes.hpp"
#include "selection.hpp"

namespace mscomm {

void barrier(Communicator& comm, const CollectiveOptions& opts) {
  const int n = comm.size(), me = comm.rank();
  if (n == 1) check_requested(comm, Collective::Barrier, opts.algorithm);  // one rank: no row runs, but the name must exist
  if (n == 1) return;
  const Algo algorithm = select({comm, Collective::Barrier}, opts.algorithm).algo();
  run_collective(comm, Collective::Barrier, 0, DataType::Uint8, ReduceOp::Sum, -1, opts.timeout_s, algorithm, [&](Call& c) {
    Pipes pipes(c);
    for (int dist = 1, round = 0; dist < n; dist *= 2, ++round) {
      const int to = (me + dist) % n, from = (me - dist + n) % n;
      CallDescriptor d = c.desc;
      d.count = static_cast<uint64_t>(round);
      pipes.exchange(to, nullptr, 0, from, nullptr, 0, round == 0 ? &d : nullptr, round == 0 ? &d : nullptr);
    }
    pipes.finish();
  });
}

}  // namespace mscomm
