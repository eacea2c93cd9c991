// Send and recv.
//
// send/recv: a pipe transfer between two ranks; the first chunk carries a descriptor with the
//   pair's sequence number, element count and tag, so mismatched pairs fail on both sides.
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
  run_collective(comm, Collective::SendRecv, count, opts.dtype, ReduceOp::Sum, tag, opts.timeout_s, Algo::None, [&](Call& c) {
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

}  // namespace mscomm
