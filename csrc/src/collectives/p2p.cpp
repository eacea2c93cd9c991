// Send, recv and barrier.
//
// send/recv: a pipe transfer between two ranks; the first chunk carries a descriptor with the
//   pair's sequence number, element count and tag, so mismatched pairs fail on both sides.
// barrier: dissemination, ceil(log2 N) rounds; in round k every rank exchanges an empty chunk
//   with the ranks 2^k away, over shared memory and TCP alike.
#include "call.hpp"
#include "mscomm/collectives.hpp"
#include "pipes.hpp"

namespace mscomm {

namespace {

void check_peer(Communicator& comm, int peer, const char* what) {
  if (peer < 0 || peer >= comm.size() || peer == comm.rank())
    throw InvalidArgument(std::string(what) + ": peer " + std::to_string(peer) + " is not another rank of this " +
                          std::to_string(comm.size()) + "-rank communicator (this is rank " +
                          std::to_string(comm.rank()) + ")");
}

void transfer(Communicator& comm, bool sending, const char* src, char* dst, size_t count, int peer, int tag,
              const CollectiveOptions& opts) {
  const size_t bytes = count * dtype_size(opts.dtype);
  run_collective(comm, Collective::SendRecv, count, opts.dtype, ReduceOp::Sum, tag, opts.timeout_s, 0, [&](Call& c) {
    // Each direction of a pair numbers its transfers: the sender's n-th send is the receiver's
    // n-th receive from it (sends and receives between two ranks do not wait for each other).
    c.desc.call = sending ? c.ctx.sends[peer]++ : c.ctx.recvs[peer]++;
    const CallDescriptor d = pair_descriptor(c.desc, bytes);
    Pipes pipes(c);
    if (sending) pipes.exchange(peer, src, bytes, -1, nullptr, 0, &d, nullptr);
    else pipes.exchange(-1, nullptr, 0, peer, dst, bytes, nullptr, &d);
    pipes.finish();
  });
}

}  // namespace

void send(Communicator& comm, const void* buffer, size_t count, int peer, int tag, const CollectiveOptions& opts) {
  check_peer(comm, peer, "send");
  MSCOMM_CHECK_ARG(count == 0 || buffer, "send: null buffer with a non-zero count");
  transfer(comm, true, static_cast<const char*>(buffer), nullptr, count, peer, tag, opts);
}

void recv(Communicator& comm, void* buffer, size_t count, int peer, int tag, const CollectiveOptions& opts) {
  check_peer(comm, peer, "recv");
  MSCOMM_CHECK_ARG(count == 0 || buffer, "recv: null buffer with a non-zero count");
  transfer(comm, false, nullptr, static_cast<char*>(buffer), count, peer, tag, opts);
}

void barrier(Communicator& comm, const CollectiveOptions& opts) {
  const int n = comm.size(), me = comm.rank();
  if (n == 1) return;
  run_collective(comm, Collective::Barrier, 0, DataType::Uint8, ReduceOp::Sum, -1, opts.timeout_s, 0, [&](Call& c) {
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
