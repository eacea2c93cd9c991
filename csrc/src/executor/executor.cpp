// The plan executor: runs a loaded plan's steps over the communicator's channels (MemoryChannel
// to same-host peers, PortChannel over TCP to the others), one iteration per piece. See
// executor.hpp for the words (class, piece, slot, credit) and the workspace layout.
#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>

#include "executor.hpp"
#include "mscomm/env.hpp"
#include "mscomm/errors.hpp"
#include "mscomm/plan.hpp"
#include "mscomm/reduce.hpp"

namespace mscomm {

namespace executor {

namespace {
std::mutex registry_mu;
std::map<const Communicator*, std::weak_ptr<Workspace>> registry;
}  // namespace

Workspace::Workspace(Communicator& c)
    : comm(c),
      health_key(&c.health()),
      rank(c.rank()),
      size(c.size()),
      header_bytes((static_cast<size_t>(c.size()) * 2 * sizeof(Descriptor) + 4095) & ~size_t{4095}),
      slot_bytes(static_cast<size_t>(env_int("MSCOMM_PLAN_SLOT_BYTES")) & ~size_t{63}),
      piece_bytes(static_cast<size_t>(env_int("MSCOMM_PLAN_PIECE_BYTES")) & ~size_t{63}),
      outgoing(c.size()) {
  MSCOMM_CHECK_ARG(slot_bytes >= 4096, "MSCOMM_PLAN_SLOT_BYTES must be at least 4096");
  MSCOMM_CHECK_ARG(piece_bytes >= 64, "MSCOMM_PLAN_PIECE_BYTES must be at least 64");
  mine = c.register_memory(header_bytes + 2 * slot_bytes);
  all = c.exchange_memory(mine);
  data.resize(size);
  credit.resize(size);
  for (int p = 0; p < size; ++p) {
    if (p == rank) continue;
    data[p] = c.channel(p, mine, all[p]);
    credit[p] = c.make_semaphore(p);
  }
}

std::shared_ptr<Workspace> workspace_for(Communicator& comm) {
  std::lock_guard<std::mutex> lock(registry_mu);
  for (auto it = registry.begin(); it != registry.end();) it = it->second.expired() ? registry.erase(it) : std::next(it);
  auto it = registry.find(&comm);
  if (it != registry.end()) {
    auto ws = it->second.lock();
    if (ws && ws->health_key == &comm.health()) return ws;
  }
  auto ws = std::make_shared<Workspace>(comm);
  registry[&comm] = ws;
  return ws;
}

}  // namespace executor

using executor::Buf;
using executor::CollectiveKind;
using executor::Op;
using executor::OpKind;

void Plan::check(const std::string& json, int rank, int size) { executor::compile(json, rank, size); }

std::shared_ptr<Plan> Plan::load(Communicator& comm, const std::string& json, double timeout_s) {
  MSCOMM_CHECK_ARG(!comm.closed(), "load_plan: the communicator is closed");
  comm.health().check();
  const double timeout = timeout_s > 0 ? timeout_s : comm.timeout();
  std::shared_ptr<executor::Program> program;
  std::string error;
  try {
    program = executor::compile(json, comm.rank(), comm.size());
  } catch (const InvalidArgument& e) {
    error = e.what();
  }
  // Every rank learns whether every other could load the plan, and whether they loaded the same one.
  const std::string mine = error.empty() ? "ok " + program->digest : "error " + error;
  auto all = comm.bootstrap().allgather(mine, "load_plan", timeout);
  if (!error.empty()) throw InvalidArgument(error);
  for (int r = 0; r < comm.size(); ++r)
    if (all[r].rfind("error ", 0) == 0)
      throw InvalidArgument("load_plan: rank " + std::to_string(r) + " refused the plan: " + all[r].substr(6));
  for (int r = 0; r < comm.size(); ++r)
    if (all[r] != mine)
      throw InvalidArgument("load_plan: the ranks loaded different plans: rank " + std::to_string(comm.rank()) +
                            " has digest " + program->digest + ", rank " + std::to_string(r) + " has " +
                            all[r].substr(3) + ". Every rank must load the same plan.");
  std::shared_ptr<Plan> plan(new Plan());
  plan->comm_ = &comm;
  plan->program_ = std::move(program);
  plan->workspace_ = executor::workspace_for(comm);
  return plan;
}

Plan::~Plan() = default;

const std::string& Plan::name() const { return program_->name; }
const std::string& Plan::collective() const { return program_->collective_name; }
int Plan::num_ranks() const { return program_->num_ranks; }
int Plan::k() const { return program_->k; }
const std::string& Plan::digest() const { return program_->digest; }
size_t Plan::steps() const { return program_->num_steps; }
bool Plan::in_place_safe() const { return program_->in_place_safe; }

namespace {

constexpr uint64_t kMagic = 0x6e616c70636d736dULL;  // "mscmplan"

// The chunk grid applied to the actual count: where global chunk g lies in the full buffer.
struct Grid {
  CollectiveKind coll;
  size_t count, N, k;
  size_t offset(size_t g) const {
    if (coll == CollectiveKind::Allreduce) return g * count / (N * k);
    return (g / k) * count + (g % k) * count / k;
  }
  size_t length(size_t g) const {
    if (coll == CollectiveKind::Allreduce) return offset(g + 1) - offset(g);
    const size_t j = g % k;
    return (j + 1) * count / k - j * count / k;
  }
  size_t max_length() const {
    const size_t parts = coll == CollectiveKind::Allreduce ? N * k : k;
    return (count + parts - 1) / parts;
  }
};

std::string describe_op(const Op& op) {
  static const char* names[] = {"put", "signal", "wait", "reduce", "copy"};
  std::string s = names[static_cast<int>(op.kind)];
  if (op.peer >= 0) s += (op.kind == OpKind::Wait ? " on rank " : " to rank ") + std::to_string(op.peer);
  return s;
}

}  // namespace

void Plan::run(const void* input, void* output, size_t count, DataType dtype, ReduceOp op, double timeout_s) {
  Communicator& comm = *comm_;
  const executor::Program& prog = *program_;
  executor::Workspace& ws = *workspace_;
  const std::string where = "plan '" + prog.name + "' (" + prog.collective_name + ")";
  MSCOMM_CHECK_ARG(!comm.closed(), where + ": the communicator is closed");
  MSCOMM_CHECK_ARG(ws.health_key == &comm.health(), where + ": loaded on another communicator");
  comm.health().check();
  const double timeout = timeout_s > 0 ? timeout_s : comm.timeout();
  const size_t es = dtype_size(dtype);
  const int me = comm.rank(), N = prog.num_ranks;
  const size_t k = static_cast<size_t>(prog.k);
  const CollectiveKind coll = prog.collective;
  if (count == 0) return;
  MSCOMM_CHECK_ARG(input && output, where + ": null buffer with a non-zero count");
  MSCOMM_CHECK_ARG(count <= (size_t{1} << 50) / es / static_cast<size_t>(N), where + ": count is too large");

  // Buffers: sizes in elements, and whether the call runs in place.
  const size_t full = coll == CollectiveKind::Allreduce ? count : count * static_cast<size_t>(N);
  const size_t in_elems = coll == CollectiveKind::Allgather ? count : full;
  const size_t out_elems = coll == CollectiveKind::ReduceScatter ? count : full;
  auto in = static_cast<const char*>(input);
  auto out = static_cast<char*>(output);
  const size_t my_shard = static_cast<size_t>(me) * count * es;
  bool in_place = false;
  if (coll == CollectiveKind::Allreduce) in_place = in == out;
  else if (coll == CollectiveKind::Allgather) in_place = in == out + my_shard;
  else in_place = out == in + my_shard;
  if (!in_place && in < out + out_elems * es && out < in + in_elems * es)
    throw InvalidArgument(where + ": input and output overlap without being the in-place layout (allreduce: the "
                          "same buffer; allgather: input is this rank's block of the output; reduce_scatter: output "
                          "is this rank's block of the input)");
  if (in_place && !prog.in_place_safe) {
    // This plan reads an input chunk after writing its output twin: work from a private copy.
    ws.input_copy.resize(in_elems * es);
    std::memcpy(ws.input_copy.data(), in, in_elems * es);
    in = ws.input_copy.data();
  }

  Grid grid{coll, count, static_cast<size_t>(N), k};
  const size_t max_len = grid.max_length();
  // Pieces: at most MSCOMM_PLAN_PIECE_BYTES per chunk, and every rank's staging chunks in one slot.
  const size_t line = 64 / es;  // elements per cache line (every dtype size divides 64)
  const size_t F = std::max<size_t>(1, prog.max_footprint);
  if (F * 64 > ws.slot_bytes)
    throw InvalidArgument(where + ": a rank needs " + std::to_string(F) + " staging chunks, more than " +
                          "MSCOMM_PLAN_SLOT_BYTES=" + std::to_string(ws.slot_bytes) + " holds; raise it");
  size_t cap = std::min(max_len, std::max<size_t>(1, ws.piece_bytes / es));
  cap = std::min(cap, ws.slot_bytes / F / es);
  cap = std::max(line, (cap + line - 1) / line * line);
  while (cap > line && F * cap * es > ws.slot_bytes) cap -= line;
  const size_t cap_bytes = cap * es;
  const size_t pieces = std::max<size_t>(1, (max_len + cap - 1) / cap);

  // Where chunk references of this rank lie (element offsets into the user buffers).
  auto user_offset = [&](Buf b, uint32_t index) -> size_t {
    const bool shard = (coll == CollectiveKind::Allgather && b == Buf::Input) ||
                       (coll == CollectiveKind::ReduceScatter && b == Buf::Output);
    return shard ? grid.offset(static_cast<size_t>(me) * k + index) - static_cast<size_t>(me) * count
                 : grid.offset(index);
  };
  auto out_class = [&](uint32_t index) -> size_t {
    return coll == CollectiveKind::ReduceScatter ? static_cast<size_t>(me) * k + index : index;
  };
  char* const ws_base = static_cast<char*>(ws.mine.data());
  const ReduceOp pairwise = op == ReduceOp::Avg ? ReduceOp::Sum : op;
  std::vector<bool> tcp(N, false);
  bool any_tcp = false;
  for (int q : prog.put_peers) any_tcp = any_tcp || (tcp[q] = ws.data[q]->transport() == Transport::Tcp);
  auto sync_tcp = [&] {
    for (int q : prog.put_peers)
      if (tcp[q]) ws.data[q]->wait_sent(timeout);
  };
  std::vector<const void*> srcs;

  const uint64_t call = ws.calls++;
  executor::Descriptor desc{kMagic, call, count, prog.digest64, static_cast<uint32_t>(coll),
                            static_cast<uint8_t>(dtype), static_cast<uint8_t>(op), {0, 0}, {cap, 0, 0}};
  const Op* current = nullptr;
  size_t piece = 0;
  try {
    for (piece = 0; piece < pieces; ++piece) {
      const uint64_t G = ws.iterations;
      const size_t slot = ws.slot_offset(G);
      char* my_slot = ws_base + slot;
      if (G >= 2 && any_tcp) sync_tcp();  // my slot's earlier puts no longer read it
      const size_t start = piece * cap;
      auto len_of = [&](size_t cls) {
        const size_t L = grid.length(cls);
        return std::min(cap, L - std::min(L, start));
      };
      auto ptr = [&](const executor::Ref& r) -> char* {
        if (r.buf == Buf::Scratch) return my_slot + r.index * cap_bytes;
        const size_t off = (user_offset(r.buf, r.index) + start) * es;
        return r.buf == Buf::Input ? const_cast<char*>(in) + off : out + off;
      };
      auto before_send = [&](const Op& o) {
        const int q = o.peer;
        if (G >= 2) ws.credit[q].wait_until(G - 1, timeout);  // q is done with this slot's last use
        if (o.first_to_peer && piece == 0) {
          ws.outgoing[q] = desc;
          ws.data[q]->put_from(ws.descriptor_offset(me, call), &ws.outgoing[q], sizeof(desc));
        }
      };
      for (const Op& o : prog.ops) {
        current = &o;
        switch (o.kind) {
          case OpKind::Put: {
            before_send(o);
            const size_t n = len_of(o.cls);
            if (n) ws.data[o.peer]->put_from(slot + o.remote_slot * cap_bytes, ptr(o.srcs[0]), n * es);
            break;
          }
          case OpKind::Signal:
            before_send(o);
            ws.data[o.peer]->signal();
            break;
          case OpKind::Wait: {
            ws.data[o.peer]->wait(timeout);
            if (o.first_from_peer && piece == 0) {
              executor::Descriptor theirs;
              std::memcpy(&theirs, ws_base + ws.descriptor_offset(o.peer, call), sizeof(theirs));
              if (theirs.magic != kMagic || theirs.call != call || theirs.count != count ||
                  theirs.digest != desc.digest || theirs.dtype != desc.dtype || theirs.op != desc.op ||
                  theirs.pad[0] != desc.pad[0])
                comm.fail_everywhere(
                    ErrorKind::InvalidArgument,
                    where + " call #" + std::to_string(call) + ": arguments differ across ranks: rank " +
                        std::to_string(me) + " runs plan " + prog.digest + " with count=" + std::to_string(count) +
                        " dtype=" + dtype_name(dtype) + " op=" + op_name(op) + ", rank " + std::to_string(o.peer) +
                        " sent count=" + std::to_string(theirs.count) + " dtype=" +
                        dtype_name(static_cast<DataType>(theirs.dtype % 8)) + " op=" +
                        op_name(static_cast<ReduceOp>(theirs.op % 5)) +
                        (theirs.digest != desc.digest ? " with another plan" : "") +
                        (theirs.call != call ? " (after a different number of plan calls)" : "") +
                        (theirs.pad[0] != desc.pad[0] ? " (pieces of another size: MSCOMM_PLAN_PIECE_BYTES or "
                                                        "MSCOMM_PLAN_SLOT_BYTES differ)" : "") +
                        ". Every rank must run the same plan with matching count, dtype and op.");
            }
            if (!o.copy_out.empty() && o.sync_before && in_place && any_tcp) sync_tcp();
            for (const auto& [s, index] : o.copy_out) {
              const size_t n = len_of(out_class(index));
              if (!n) continue;
              char* dst = out + (user_offset(Buf::Output, index) + start) * es;
              // A plain copy: plans often forward what they receive, so keep it in the cache.
              std::memcpy(dst, my_slot + s * cap_bytes, n * es);
            }
            break;
          }
          case OpKind::Reduce: {
            const size_t n = len_of(o.cls);
            if (o.sync_before && in_place && any_tcp) sync_tcp();
            if (!n) break;
            srcs.clear();
            for (const auto& r : o.srcs) srcs.push_back(ptr(r));
            reduce(ptr(o.dst), srcs.data(), static_cast<int>(srcs.size()), n, dtype, pairwise);
            break;
          }
          case OpKind::Copy: {
            const size_t n = len_of(o.cls);
            if (o.sync_before && in_place && any_tcp) sync_tcp();
            char* d = ptr(o.dst);
            const char* s = ptr(o.srcs[0]);
            if (n && d != s) std::memmove(d, s, n * es);
            break;
          }
        }
      }
      current = nullptr;
      if (op == ReduceOp::Avg && coll != CollectiveKind::Allgather) {
        if (any_tcp) sync_tcp();  // outputs may be sources of queued puts
        const size_t nout = coll == CollectiveKind::ReduceScatter ? k : static_cast<size_t>(N) * k;
        for (size_t i = 0; i < nout; ++i) {
          const size_t n = len_of(out_class(static_cast<uint32_t>(i)));
          if (n) divide(out + (user_offset(Buf::Output, static_cast<uint32_t>(i)) + start) * es, n, dtype, N);
        }
      }
      for (int q = 0; q < N; ++q)
        if (q != me) ws.credit[q].signal();
      ++ws.iterations;
    }
    if (any_tcp) sync_tcp();  // the caller may reuse its buffers on return
  } catch (const Error& e) {
    std::string msg = e.what();
    if (current && msg.find(where) == std::string::npos)
      msg = where + ", rank " + std::to_string(me) + " step " + std::to_string(current->step) + " (" +
            describe_op(*current) + "), piece " + std::to_string(piece) + " of " + std::to_string(pieces) + ": " + msg;
    msg += " [the communicator cannot be used after this error]";
    comm.health().fail(e.kind(), msg);
    throw_error(e.kind(), msg);
  }
}

}  // namespace mscomm
