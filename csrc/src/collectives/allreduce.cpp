// Allreduce algorithms. Words used below:
//   block    - the part of the buffer one pass handles; it fits one scratch slot.
//   segment  - a rank's share of a block (block split evenly, remainder spread over ranks).
//   sync     - every same-host rank signals every other and waits for all of them.
//
// oneshot (one host, small): copy the input into my slot, sync, every rank reduces all slots
//   into its output in rank order. One sync per call; slots alternate between calls.
// rsag (one host, large): per block: copy the other ranks' segments of my input into my slot,
//   sync, reduce my segment from my input and every peer's slot into my output and my slot,
//   sync, copy the other segments out of their owners' slots. Two syncs per block; blocks
//   alternate between two slots so the next copy-in overlaps nobody's reads.
// ring (any transport, over channels): per block, N-1 reduce-scatter steps then N-1 allgather
//   steps; each step puts one segment into the next rank's ring slot, signals, waits for the
//   previous rank's segment, consumes it and returns a credit. Slots alternate by global step and
//   a put into a slot first waits for the credit that says the slot was consumed.
#include <algorithm>
#include <cstring>

#include "context.hpp"
#include "mscomm/collectives.hpp"
#include "mscomm/env.hpp"
#include "mscomm/reduce.hpp"

namespace mscomm {

namespace {

enum Algorithm : uint8_t { kOneShot = 1, kRsag = 2, kRing = 3 };
constexpr uint32_t kAllreduce = 1;
const char* algorithm_name(uint8_t a) { return a == kOneShot ? "oneshot" : a == kRsag ? "rsag" : "ring"; }

struct Call {
  Communicator& comm;
  CollectiveContext& ctx;
  const char* input;
  char* output;
  size_t count;
  size_t es;  // element size
  DataType dtype;
  ReduceOp op;
  double timeout;
  CallDescriptor desc;
};

size_t seg_begin(size_t n, int parts, int i) { return n * static_cast<size_t>(i) / static_cast<size_t>(parts); }

std::string describe(const CallDescriptor& d) {
  return "count=" + std::to_string(d.count) + " dtype=" + dtype_name(static_cast<DataType>(d.dtype)) +
         " op=" + op_name(static_cast<ReduceOp>(d.op)) + " algorithm=" + algorithm_name(d.algorithm);
}

// Cheap argument agreement, always on: a disagreement fails the call on every rank.
void check_descriptor(Call& c, int peer, const char* raw) {
  CallDescriptor theirs;
  std::memcpy(&theirs, raw, sizeof(theirs));
  const CallDescriptor& mine = c.desc;
  if (theirs.call == mine.call && theirs.count == mine.count && theirs.collective == mine.collective &&
      theirs.dtype == mine.dtype && theirs.op == mine.op && theirs.algorithm == mine.algorithm)
    return;
  c.comm.fail_everywhere(ErrorKind::InvalidArgument,
                         "allreduce #" + std::to_string(mine.call) + ": arguments differ across ranks: rank " +
                             std::to_string(c.comm.rank()) + " passed " + describe(mine) + ", rank " +
                             std::to_string(peer) + " passed " + describe(theirs) +
                             (theirs.call != mine.call ? " (and a different number of earlier collectives)" : "") +
                             ". Every rank must pass the same count, dtype and op.");
}

void sync_local(Call& c) {
  for (int p : c.comm.local_ranks())
    if (p != c.comm.rank()) c.ctx.data[p]->signal();
  for (int p : c.comm.local_ranks())
    if (p != c.comm.rank()) c.ctx.data[p]->wait(c.timeout);
}

void check_local_descriptors(Call& c) {
  for (int p : c.comm.local_ranks())
    if (p != c.comm.rank()) check_descriptor(c, p, c.ctx.descriptor(p, c.desc.call));
}

void publish_descriptor(Call& c) {
  std::memcpy(c.ctx.descriptor(c.comm.rank(), c.desc.call), &c.desc, sizeof(c.desc));
}

void oneshot(Call& c) {
  const int n = c.comm.size(), me = c.comm.rank();
  const uint64_t phase = c.ctx.shm_phase++;
  publish_descriptor(c);
  std::memcpy(c.ctx.shm_slot(me, phase), c.input, c.count * c.es);
  sync_local(c);
  check_local_descriptors(c);
  std::vector<const void*> srcs(n);
  for (int r = 0; r < n; ++r) srcs[r] = c.ctx.shm_slot(r, phase);
  reduce(c.output, srcs.data(), n, c.count, c.dtype, c.op);
}

void rsag(Call& c) {
  const int n = c.comm.size(), me = c.comm.rank();
  const size_t block = c.ctx.shm_slot_bytes / c.es;
  std::vector<const void*> srcs(n);
  publish_descriptor(c);
  for (size_t off = 0; off < c.count; off += block) {
    const size_t len = std::min(block, c.count - off);
    const uint64_t phase = c.ctx.shm_phase++;
    char* mine = c.ctx.shm_slot(me, phase);
    auto lo = [&](int r) { return seg_begin(len, n, r) * c.es; };
    auto bytes = [&](int r) { return lo(r + 1) - lo(r); };
    const char* in = c.input + off * c.es;
    char* out = c.output + off * c.es;
    // Peers reduce their segments from my slot; my own segment they never read, so it is not
    // copied in: I reduce it straight from my input.
    for (int r = 0; r < n; ++r)
      if (r != me) std::memcpy(mine + lo(r), in + lo(r), bytes(r));
    sync_local(c);
    if (off == 0) check_local_descriptors(c);
    for (int r = 0; r < n; ++r) srcs[r] = r == me ? in + lo(me) : c.ctx.shm_slot(r, phase) + lo(me);
    reduce(out + lo(me), srcs.data(), n, bytes(me) / c.es, c.dtype, c.op, mine + lo(me));
    sync_local(c);
    for (int r = 0; r < n; ++r)
      if (r != me) std::memcpy(out + lo(r), c.ctx.shm_slot(r, phase) + lo(r), bytes(r));
  }
}

class Ring {
 public:
  explicit Ring(Call& c)
      : c_(c), n_(c.comm.size()), me_(c.comm.rank()), next_((me_ + 1) % n_), prev_((me_ + n_ - 1) % n_) {}

  void run() {
    if (c_.output != c_.input) std::memcpy(c_.output, c_.input, c_.count * c_.es);
    const ReduceOp pairwise = c_.op == ReduceOp::Avg ? ReduceOp::Sum : c_.op;
    const size_t block = (c_.ctx.ring_slot_bytes / c_.es) * static_cast<size_t>(n_);
    if (c_.count == 0) step(nullptr, 0, [](const char*) {});
    for (size_t off = 0; off < c_.count; off += block) {
      const size_t len = std::min(block, c_.count - off);
      auto seg = [&](int s, size_t* bytes) {
        s = ((s % n_) + n_) % n_;
        const size_t lo = seg_begin(len, n_, s), hi = seg_begin(len, n_, s + 1);
        *bytes = (hi - lo) * c_.es;
        return c_.output + (off + lo) * c_.es;
      };
      for (int t = 0; t < n_ - 1; ++t) {  // reduce-scatter
        size_t send_bytes, recv_bytes;
        char* send = seg(me_ - t, &send_bytes);
        char* recv = seg(me_ - t - 1, &recv_bytes);
        step(send, send_bytes, [&](const char* slot) {
          const void* srcs[2] = {recv, slot};
          reduce(recv, srcs, 2, recv_bytes / c_.es, c_.dtype, pairwise);
          if (t == n_ - 2 && c_.op == ReduceOp::Avg) divide(recv, recv_bytes / c_.es, c_.dtype, n_);
        });
      }
      for (int t = 0; t < n_ - 1; ++t) {  // allgather
        size_t send_bytes, recv_bytes;
        char* send = seg(me_ + 1 - t, &send_bytes);
        char* recv = seg(me_ - t, &recv_bytes);
        step(send, send_bytes, [&](const char* slot) { std::memcpy(recv, slot, recv_bytes); });
      }
    }
    c_.ctx.data[next_]->wait_sent(c_.timeout);  // the caller may reuse its buffer on return
  }

 private:
  template <class Consume>
  void step(const char* send, size_t bytes, Consume&& consume) {
    CollectiveContext& ctx = c_.ctx;
    const uint64_t g = ctx.ring_step++;
    if (g >= 2) ctx.credit[next_]->wait(c_.timeout);
    if (first_) {
      ctx.outgoing = c_.desc;
      ctx.data[next_]->put_from((c_.desc.call % 2) * sizeof(CallDescriptor), &ctx.outgoing, sizeof(CallDescriptor));
    }
    ctx.data[next_]->put_from(ctx.ring_slot_offset(g), send, bytes);
    ctx.data[next_]->signal();
    ctx.data[prev_]->wait(c_.timeout);
    if (first_) check_descriptor(c_, prev_, static_cast<char*>(ctx.scratch.data()) + (c_.desc.call % 2) * sizeof(CallDescriptor));
    first_ = false;
    consume(ctx.ring_slot(g));
    ctx.credit[prev_]->signal();
  }

  Call& c_;
  int n_, me_, next_, prev_;
  bool first_ = true;
};

uint8_t choose(Communicator& comm, size_t bytes, const std::string& requested) {
  const Tuning& tuning = comm.collectives().tuning;
  const std::string& name = requested.empty() || requested == "auto" ? tuning.allreduce_algorithm : requested;
  const bool local = comm.num_hosts() == 1;
  const size_t oneshot_max = tuning.oneshot_max_bytes;
  const size_t slot = tuning.shm_slot_bytes;
  if (name == "auto") {
    if (!local) return kRing;
    return bytes <= std::min(oneshot_max, slot) ? kOneShot : kRsag;
  }
  if (name == "ring") return kRing;
  if (name == "oneshot" || name == "rsag") {
    if (!local)
      throw InvalidArgument("allreduce algorithm '" + name + "' needs every rank on one host with shared memory; this communicator spans " +
                            std::to_string(comm.num_hosts()) + " hosts (or MSCOMM_FORCE_TCP is set); use 'ring' or 'auto'");
    if (name == "oneshot" && bytes > slot)
      throw InvalidArgument("allreduce algorithm 'oneshot' handles at most MSCOMM_SHM_SLOT_BYTES=" + std::to_string(slot) +
                            " bytes, got " + std::to_string(bytes));
    return name == "oneshot" ? kOneShot : kRsag;
  }
  throw InvalidArgument("unknown allreduce algorithm '" + name + "'; choose auto, oneshot, rsag or ring");
}

}  // namespace

std::string allreduce_algorithm(Communicator& comm, size_t bytes, const std::string& requested) {
  if (comm.size() == 1) return "local";
  return algorithm_name(choose(comm, bytes, requested));
}

void allreduce(Communicator& comm, const void* input, void* output, size_t count, const AllreduceOptions& opts) {
  MSCOMM_CHECK_ARG(!comm.closed(), "allreduce: the communicator is closed");
  const size_t es = dtype_size(opts.dtype);
  MSCOMM_CHECK_ARG(count == 0 || (input && output), "allreduce: null buffer with a non-zero count");
  const char* in = static_cast<const char*>(input);
  char* out = static_cast<char*>(output);
  MSCOMM_CHECK_ARG(in == out || count == 0 || in + count * es <= out || out + count * es <= in,
                   "allreduce: input and output overlap without being the same buffer; pass the same array for in-place");
  comm.health().check();
  if (comm.size() == 1) {
    if (in != out && count) std::memmove(out, in, count * es);
    return;
  }
  const uint8_t algorithm = choose(comm, count * es, opts.algorithm);
  CollectiveContext& ctx = comm.collectives();
  Call c{comm, ctx, in, out, count, es, opts.dtype, opts.op, opts.timeout_s > 0 ? opts.timeout_s : comm.timeout(), {}};
  c.desc.call = comm.next_call();
  c.desc.count = count;
  c.desc.collective = kAllreduce;
  c.desc.dtype = static_cast<uint8_t>(opts.dtype);
  c.desc.op = static_cast<uint8_t>(opts.op);
  c.desc.algorithm = algorithm;
  try {
    if (algorithm == kOneShot) oneshot(c);
    else if (algorithm == kRsag) rsag(c);
    else Ring(c).run();
  } catch (const Error& e) {
    // The ranks' semaphore counts no longer agree: nothing can safely run on this communicator.
    comm.health().fail(e.kind(), std::string(e.what()) + " [the communicator cannot be used after this error]");
    throw;
  }
}

}  // namespace mscomm
