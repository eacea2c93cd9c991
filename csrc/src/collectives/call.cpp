#include "call.hpp"

#include <cstring>

namespace mscomm {

namespace {
std::string describe(const CallDescriptor& d) {
  std::string s = std::string(collective_name(d.collective)) + " count=" + std::to_string(d.count) +
                  " dtype=" + dtype_name(static_cast<DataType>(d.dtype));
  auto c = static_cast<Collective>(d.collective);
  if (c == Collective::Allreduce || c == Collective::Reduce || c == Collective::ReduceScatter)
    s += std::string(" op=") + op_name(static_cast<ReduceOp>(d.op));
  if (c == Collective::Reduce || c == Collective::Broadcast || c == Collective::Gather || c == Collective::Scatter)
    s += " root=" + std::to_string(d.root);
  if (c == Collective::SendRecv) s += " tag=" + std::to_string(d.root);
  return s;
}
}  // namespace

void Call::check(int peer, const char* raw, const CallDescriptor& expected) const {
  CallDescriptor theirs;
  std::memcpy(&theirs, raw, sizeof(theirs));
  if (theirs.call == expected.call && theirs.count == expected.count && theirs.collective == expected.collective &&
      theirs.dtype == expected.dtype && theirs.op == expected.op && theirs.root == expected.root &&
      theirs.algorithm == expected.algorithm)
    return;
  const bool p2p = expected.collective == static_cast<uint32_t>(Collective::SendRecv);
  std::string what = p2p ? "send/recv between ranks " + std::to_string(peer) + " and " + std::to_string(rank)
                         : std::string(collective_name(expected.collective)) + " #" + std::to_string(expected.call);
  std::string hint = theirs.call != expected.call
                         ? (p2p ? " (and a different number of earlier transfers between them)"
                                : " (and a different number of earlier collectives)")
                         : "";
  if (theirs.algorithm != expected.algorithm && hint.empty())
    hint = " (and a different algorithm: the buffers are registered with comm.register on some ranks only, or the "
           "ranks requested different algorithms)";
  comm.fail_everywhere(ErrorKind::InvalidArgument,
                       what + ": arguments differ across ranks: rank " + std::to_string(rank) + " expects " +
                           describe(expected) + ", rank " + std::to_string(peer) + " passed " + describe(theirs) + hint +
                           ". Every rank must call the same collective with matching count, dtype, op and root.");
}

void Call::sync_local() const {
  for (int p : comm.local_ranks())
    if (p != rank) ctx.data[p]->signal();
  for (int p : comm.local_ranks())
    if (p != rank) ctx.data[p]->wait(timeout);
}

void Call::publish_descriptor() {
  entry = static_cast<int>(ctx.shm_phase % 2);
  std::memcpy(ctx.descriptor(rank, rank, entry), &desc, sizeof(desc));
}

void Call::check_local_descriptors() const {
  for (int p : comm.local_ranks())
    if (p != rank) check(p, ctx.descriptor(p, p, entry), desc);
}

// MSCOMM_CHECK_ARGS=1: every rank sees every rank's descriptor, so all of them raise the same
// error, whichever pair disagrees.
static void check_all_ranks(const Call& c) {
  std::string mine(reinterpret_cast<const char*>(&c.desc), sizeof(c.desc));
  auto all = c.comm.bootstrap().allgather(mine, "argument check", c.timeout);
  for (int r = 0; r < c.size; ++r) {
    CallDescriptor theirs;
    if (all[r].size() != sizeof(theirs)) throw InternalError("argument check: malformed descriptor");
    std::memcpy(&theirs, all[r].data(), sizeof(theirs));
    const CallDescriptor& d = c.desc;
    if (theirs.call == d.call && theirs.count == d.count && theirs.collective == d.collective &&
        theirs.dtype == d.dtype && theirs.op == d.op && theirs.root == d.root)
      continue;
    throw InvalidArgument(std::string(collective_name(d.collective)) + " #" + std::to_string(d.call) +
                          " (MSCOMM_CHECK_ARGS): arguments differ across ranks: rank " + std::to_string(c.rank) +
                          " passed " + describe(d) + ", rank " + std::to_string(r) + " passed " + describe(theirs));
  }
}

void check_no_overlap(const char* what, const void* a, size_t na, const void* b, size_t nb) {
  auto pa = static_cast<const char*>(a);
  auto pb = static_cast<const char*>(b);
  if (pa == pb || na == 0 || nb == 0 || pa + na <= pb || pb + nb <= pa) return;
  throw InvalidArgument(std::string(what) + ": input and output overlap without being the same buffer");
}

const std::string& requested_algorithm(Communicator& comm, const char* collective, const std::string& requested) {
  static const std::string none;
  if (!requested.empty()) return requested;
  const auto& configured = comm.collectives().tuning.algorithm;
  auto it = configured.find(collective);
  return it != configured.end() ? it->second : none;
}

void check_root(const char* what, int root, int size) {
  if (root < 0 || root >= size)
    throw InvalidArgument(std::string(what) + ": root " + std::to_string(root) + " is not a rank of this " +
                          std::to_string(size) + "-rank communicator");
}

void run_collective(Communicator& comm, Collective what, size_t count, DataType dtype, ReduceOp op, int root,
                    double timeout_s, Algo algorithm, const std::function<void(Call&)>& algorithm_fn) {
  MSCOMM_CHECK_ARG(!comm.closed(), std::string(collective_name(static_cast<uint32_t>(what))) + ": the communicator is closed");
  comm.health().check();
  CollectiveContext& ctx = comm.collectives();
  ctx.connect(comm);
  Call c{comm, ctx, timeout_s > 0 ? timeout_s : comm.timeout(), {}, comm.rank(), comm.size(), dtype_size(dtype)};
  const bool p2p = what == Collective::SendRecv;
  c.desc.call = p2p ? 0 : comm.next_call();
  c.desc.count = count;
  c.desc.collective = static_cast<uint32_t>(what);
  c.desc.dtype = static_cast<uint8_t>(dtype);
  c.desc.op = static_cast<uint8_t>(op);
  c.desc.algorithm = static_cast<uint8_t>(algorithm);
  c.desc.root = root;
  try {
    if (ctx.tuning.check_args && !p2p) check_all_ranks(c);
    algorithm_fn(c);
  } catch (const Error& e) {
    // A failure that started here (a timeout, an argument only this rank got wrong, a peer that
    // left) is reported to every rank, so none waits for this one in vain; one reported by
    // another rank is already known everywhere.
    if (e.kind() != ErrorKind::Aborted && !comm.bootstrap().failure_flag().load())
      comm.bootstrap().report_failure(e.kind(), e.what());
    comm.health().fail(e.kind(), std::string(e.what()) + " [the communicator cannot be used after this error]");
    throw;
  }
}

}  // namespace mscomm
