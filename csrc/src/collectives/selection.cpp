#include "selection.hpp"

#include <algorithm>

#include "mscomm/errors.hpp"
#include "mscomm/plan.hpp"

namespace mscomm {

namespace {

bool one_host(const Query& q) { return q.comm.num_hosts() == 1; }
bool several_hosts(const Query& q) { return q.comm.num_hosts() > 1; }
bool always(const Query&) { return true; }

bool anywhere(const Query&, std::string*) { return true; }

bool needs_one_host(const Query& q, std::string* why) {
  if (one_host(q)) return true;
  if (why)
    *why = "needs every rank on one host with shared memory; this communicator spans " +
           std::to_string(q.comm.num_hosts()) + " hosts (or MSCOMM_FORCE_TCP is set)";
  return false;
}

bool needs_direct_reads(const Query& q, std::string* why) {
  if (!needs_one_host(q, why)) return false;
  if (q.reads != DirectReads::None) return true;
  if (why) *why = "needs single-copy reads between the ranks (MSCOMM_CMA=1 where the kernel allows them) or buffers registered with comm.register on every rank";
  return false;
}

bool fits_one_slot(const Query& q, std::string* why) {
  if (!needs_one_host(q, why)) return false;
  const size_t slot = q.comm.collectives().tuning.shm_slot_bytes;
  if (q.bytes <= slot) return true;
  if (why)
    *why = "handles at most MSCOMM_SHM_SLOT_BYTES=" + std::to_string(slot) + " bytes, this call has " +
           std::to_string(q.bytes);
  return false;
}

bool needs_uniform_hosts(const Query& q, std::string* why) {
  const CollectiveContext& ctx = q.comm.collectives();
  if (several_hosts(q) && ctx.layout.uniform && q.comm.local_ranks().size() > 1) return true;
  if (why) *why = "needs several hosts with the same number (> 1) of ranks each";
  return false;
}

bool oneshot_preferred(const Query& q) {
  const Tuning& t = q.comm.collectives().tuning;
  return q.bytes <= std::min(t.oneshot_max_bytes, t.shm_slot_bytes);
}

template <SingleCopyUse use>
bool direct_preferred(const Query& q) { return direct_automatic(q.comm, q.reads, q.bytes, use); }

bool allreduce_direct_preferred(const Query& q) {
  return direct_automatic(q.comm, q.reads, q.bytes,
                          q.in_place ? SingleCopyUse::UnlessOversubscribed : SingleCopyUse::Bounded);
}

bool alltoallv_direct(const Query& q, std::string* why) {
  if (!needs_one_host(q, why)) return false;
  if (q.reads == DirectReads::SingleCopy) return true;
  if (why) *why = "needs single-copy reads between the ranks (MSCOMM_CMA=1 where the kernel allows them)";
  return false;
}

using C = Collective;
using A = Algo;

}  // namespace

const std::vector<Row>& selection_table() {
  static const std::vector<Row> table = {
      {C::Allreduce, A::Hier, "hier", "several hosts with equal ranks each: rsag within hosts, ring across them",
       needs_uniform_hosts, always},
      {C::Allreduce, A::Ring, "ring", "any transport: ring reduce-scatter then ring allgather over pipes", anywhere,
       several_hosts},
      {C::Allreduce, A::OneShot, "oneshot", "one host, small: every rank copies into its slot, one sync, all reduce all",
       fits_one_slot, oneshot_preferred},
      {C::Allreduce, A::Direct, "direct", "one host, large: reduce my segment straight from the peers' buffers",
       needs_direct_reads, allreduce_direct_preferred},
      {C::Allreduce, A::Rsag, "rsag", "one host: staged reduce-scatter and allgather through the shm slots",
       needs_one_host, always},

      {C::Reduce, A::Chain, "chain", "any transport: partial sums flow along a chain ending at the root", anywhere,
       several_hosts},
      {C::Reduce, A::Rsag, "rsag", "one host: staged reduce-scatter, then the root gathers the segments",
       needs_one_host, always},

      {C::Broadcast, A::Chain, "chain", "any transport: a pipelined chain from the root", anywhere, several_hosts},
      {C::Broadcast, A::Direct, "direct", "one host: every rank copies straight from the root's buffer",
       needs_direct_reads, direct_preferred<SingleCopyUse::Never>},
      {C::Broadcast, A::Staged, "staged", "one host: the root stages blocks in its shm slot", needs_one_host, always},

      {C::Allgather, A::Ring, "ring", "any transport: N-1 steps, each forwarding the block received last", anywhere,
       several_hosts},
      {C::Allgather, A::Direct, "direct", "one host, large: every rank copies straight from the peers' inputs",
       needs_direct_reads, direct_preferred<SingleCopyUse::Bounded>},
      {C::Allgather, A::Staged, "staged", "one host: every rank stages its input in its shm slot", needs_one_host,
       always},

      {C::ReduceScatter, A::Ring, "ring", "any transport: partial sums passed around a ring", anywhere, several_hosts},
      {C::ReduceScatter, A::Direct, "direct", "one host, large: reduce my block straight from the peers' inputs",
       needs_direct_reads, direct_preferred<SingleCopyUse::Always>},
      {C::ReduceScatter, A::Staged, "staged", "one host: blocks staged in the shm slots, reduced in rank order",
       needs_one_host, always},

      {C::Alltoall, A::Pairwise, "pairwise", "any transport: N-1 rounds of pairwise exchanges", anywhere,
       several_hosts},
      {C::Alltoall, A::Direct, "direct", "one host, large: every rank copies its block straight from the peers' inputs",
       needs_direct_reads, direct_preferred<SingleCopyUse::Always>},
      {C::Alltoall, A::Staged, "staged", "one host: blocks staged in the shm slots", needs_one_host, always},

      {C::Alltoallv, A::Direct, "direct", "one host: every rank reads its part straight from the peers' inputs",
       alltoallv_direct, always},
      {C::Alltoallv, A::Pairwise, "pairwise", "any transport: N-1 rounds of pairwise exchanges", anywhere, always},

      {C::Gather, A::Rooted, "rooted", "any transport: the root receives from every rank in turn", anywhere, always},
      {C::Scatter, A::Rooted, "rooted", "any transport: the root sends to every rank in turn", anywhere, always},
      {C::Barrier, A::Dissemination, "dissemination", "any transport: ceil(log2 N) rounds of empty exchanges",
       anywhere, always},
  };
  return table;
}

std::vector<const Row*> rows_of(Collective c) {
  std::vector<const Row*> rows;
  for (const Row& r : selection_table())
    if (r.collective == c) rows.push_back(&r);
  return rows;
}

namespace {

// Index of every collective's first row and row count, computed once: the hot path scans a
// handful of rows and builds no strings.
struct Span {
  size_t first = 0, count = 0;
};
const Span& span_of(Collective c) {
  static const std::vector<Span> spans = [] {
    std::vector<Span> s(16);
    const auto& t = selection_table();
    for (size_t i = 0; i < t.size(); ++i) {
      Span& sp = s[static_cast<size_t>(t[i].collective)];
      if (sp.count == 0) sp.first = i;
      ++sp.count;
    }
    return s;
  }();
  return spans[static_cast<size_t>(c)];
}

bool plan_runs(const PlanRow& p, const Query& q, std::string* why) {
  if (p.world_size == q.comm.size()) return true;
  if (why)
    *why = "the plan is for " + std::to_string(p.world_size) + " ranks; this communicator has " +
           std::to_string(q.comm.size());
  return false;
}
bool plan_preferred(const PlanRow& p, const Query& q) {
  return p.max_bytes > 0 && q.bytes >= p.min_bytes && q.bytes <= p.max_bytes;
}

std::vector<const PlanRow*> plans_of(const Query& q) {
  std::vector<const PlanRow*> out;
  for (const PlanRow& p : q.comm.collectives().plans)
    if (p.collective == q.collective) out.push_back(&p);
  return out;
}

std::string names_that_run(const Query& q) {
  std::string names = "auto";
  for (const PlanRow* p : plans_of(q))
    if (plan_runs(*p, q, nullptr)) names += ", " + p->name;
  const Span& sp = span_of(q.collective);
  for (size_t i = sp.first; i < sp.first + sp.count; ++i) {
    const Row& r = selection_table()[i];
    if (r.runs(q, nullptr)) names += std::string(", ") + r.name;
  }
  return names;
}

}  // namespace

Selected select(const Query& q, const std::string& requested) {
  const char* coll = collective_name(static_cast<uint32_t>(q.collective));
  const std::string& name = requested_algorithm(q.comm, coll, requested);
  const Span& sp = span_of(q.collective);
  const auto& table = selection_table();
  const auto& plans = q.comm.collectives().plans;
  if (name.empty() || name == "auto") {
    for (const PlanRow& p : plans)
      if (p.collective == q.collective && plan_runs(p, q, nullptr) && plan_preferred(p, q)) return {nullptr, &p};
    for (size_t i = sp.first; i < sp.first + sp.count; ++i)
      if (table[i].runs(q, nullptr) && table[i].preferred(q)) return {&table[i], nullptr};
    throw InternalError(std::string(coll) + ": no algorithm of the selection table takes this call");
  }
  std::string why;
  for (const PlanRow& p : plans) {
    if (p.collective != q.collective || p.name != name) continue;
    if (!plan_runs(p, q, &why)) break;
    return {nullptr, &p};
  }
  for (size_t i = sp.first; why.empty() && i < sp.first + sp.count; ++i) {
    if (name != table[i].name) continue;
    if (table[i].runs(q, &why)) return {&table[i], nullptr};
  }
  if (!why.empty())
    throw InvalidArgument(std::string(coll) + " algorithm '" + name + "' cannot run this call: it " + why +
                          "; choose one of: " + names_that_run(q));
  std::string all = "auto";
  for (const PlanRow* p : plans_of(q)) all += ", " + p->name;
  for (size_t i = sp.first; i < sp.first + sp.count; ++i) all += std::string(", ") + table[i].name;
  throw InvalidArgument("unknown " + std::string(coll) + " algorithm '" + name + "'; the selection table has " + all +
                        (name.rfind("plan:", 0) == 0 ? " (load a plan with comm.load_plan first)" : ""));
}

void check_requested(Communicator& comm, Collective c, const std::string& requested) {
  const std::string& name = requested_algorithm(comm, collective_name(static_cast<uint32_t>(c)), requested);
  if (name.empty() || name == "auto") return;
  for (const PlanRow& p : comm.collectives().plans)
    if (p.collective == c && p.name == name) return;
  for (const Row* r : rows_of(c))
    if (name == r->name) return;
  select({comm, c}, name);  // raises "unknown ... algorithm" with the table's names
}

std::vector<Verdict> explain(const Query& q, const std::string& requested) {
  std::vector<Verdict> out;
  const bool alone = q.comm.size() == 1;
  Selected chosen;
  if (!alone) {
    try {
      chosen = select(q, requested);
    } catch (const InvalidArgument&) {
      // a request that cannot run: no row is chosen, the reasons below say why
    }
  }
  Selected automatic;
  if (!alone) automatic = select(q, "auto");
  for (const PlanRow* p : plans_of(q)) {
    Verdict v{p->name, "plan (executor)", "", false, chosen.plan == p, automatic.plan == p};
    v.runs = !alone && plan_runs(*p, q, &v.reason);
    if (alone) v.reason = "a one-rank communicator exchanges nothing: the call copies locally";
    out.push_back(std::move(v));
  }
  for (const Row* r : rows_of(q.collective)) {
    Verdict v{r->name, r->summary, "", false, chosen.row == r, automatic.row == r};
    v.runs = !alone && r->runs(q, &v.reason);
    if (alone) v.reason = "a one-rank communicator exchanges nothing: the call copies locally";
    out.push_back(std::move(v));
  }
  return out;
}

void run_plan(Communicator&, const PlanRow& row, const void* input, void* output, size_t count,
              const CollectiveOptions& opts) {
  row.plan->run(input, output, count, opts.dtype, opts.op, opts.timeout_s);
}

void offer_plan(Communicator& comm, std::shared_ptr<Plan> plan, size_t min_bytes, size_t max_bytes) {
  const std::string& c = plan->collective();
  const Collective coll = c == "allreduce"        ? Collective::Allreduce
                          : c == "allgather"      ? Collective::Allgather
                          : c == "reduce_scatter" ? Collective::ReduceScatter
                                                  : throw InvalidArgument("the executor runs no " + c + " plans");
  PlanRow row{"plan:" + plan->name(), coll, plan->num_ranks(), min_bytes, max_bytes, std::move(plan)};
  auto& plans = comm.collectives().plans;
  for (PlanRow& p : plans)
    if (p.name == row.name && p.collective == row.collective) {
      p = std::move(row);  // the same name again: the newer plan replaces the row
      return;
    }
  plans.push_back(std::move(row));
}

namespace {
Collective parse_collective(const std::string& name) {
  for (uint32_t c = 1; c <= static_cast<uint32_t>(Collective::Barrier); ++c)
    if (name == collective_name(c) && c != static_cast<uint32_t>(Collective::SendRecv)) return static_cast<Collective>(c);
  throw InvalidArgument("unknown collective '" + name + "'; choose allreduce, reduce, broadcast, allgather, "
                        "reduce_scatter, alltoall, alltoallv, gather, scatter or barrier");
}
}  // namespace

std::vector<AlgorithmInfo> algorithms(Communicator& comm, const std::string& collective, size_t bytes,
                                      const void* input, size_t input_bytes, const void* output, size_t output_bytes,
                                      bool in_place, const std::string& requested) {
  const Collective c = parse_collective(collective);
  DirectReads reads = DirectReads::None;
  if (c == Collective::Alltoallv) {
    if (comm.size() > 1 && comm.num_hosts() == 1 && single_copy_reads(comm)) reads = DirectReads::SingleCopy;
  } else {
    reads = direct_reads(comm, input, input_bytes, output, output_bytes);
  }
  std::vector<AlgorithmInfo> out;
  for (Verdict& v : explain({comm, c, bytes, reads, in_place}, requested))
    out.push_back({std::move(v.name), std::move(v.summary), std::move(v.reason), v.runs, v.chosen, v.automatic});
  return out;
}

std::vector<std::pair<std::string, std::string>> algorithm_table(const std::string& collective) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const Row* r : rows_of(parse_collective(collective))) out.emplace_back(r->name, r->summary);
  return out;
}

}  // namespace mscomm
