// The selection table: every algorithm of every collective is one row, with its name, a test of
// whether it can run a call (and why not), and its place in the automatic choice. `algorithm=`
// and MSCOMM_<COLLECTIVE>_ALGO pick a row by name; "auto" (or nothing) takes the first row of the
// collective, in table order, that can run the call and prefers it. Loaded plans add rows of
// their own per communicator (CollectiveContext::plans), ahead of the built-in ones.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "call.hpp"
#include "mscomm/collectives.hpp"

namespace mscomm {


// What the choice reads of a call.
struct Query {
  Communicator& comm;
  Collective collective;
  size_t bytes = 0;                         // the per-rank message: the call's count times the element size
  DirectReads reads = DirectReads::None;    // how the direct path would read the peers' buffers
  bool in_place = false;
};

struct Row {
  Collective collective;
  Algo algo;
  const char* name;
  const char* summary;  // one line: what it does and where it runs
  // Whether it can run the call; when it cannot and `why` is given, says why there.
  bool (*runs)(const Query&, std::string* why);
  // Whether the automatic choice takes it (among the rows that can run, in table order).
  bool (*preferred)(const Query&);
};

const std::vector<Row>& selection_table();
// The rows of one collective, in the order of the automatic choice.
std::vector<const Row*> rows_of(Collective c);


// The choice for a call: a built-in row, or a plan row (then `plan` is set and row is null).
struct Selected {
  const Row* row = nullptr;
  const PlanRow* plan = nullptr;
  Algo algo() const { return plan ? Algo::Plan : row->algo; }
};

// `requested`: the call's argument; empty falls back to MSCOMM_<COLLECTIVE>_ALGO; "" or "auto"
// is the automatic choice. An unknown name, or a row that cannot run the call, raises
// InvalidArgument naming the reason and the names that can.
Selected select(const Query& q, const std::string& requested);

// A one-rank call runs no row; this still refuses a name the table does not have.
void check_requested(Communicator& comm, Collective c, const std::string& requested);

// Every row of the collective with whether it would run this call (and why not), and which one
// the automatic choice (or `requested`) takes. For mscomm.algorithms() and `--algorithm help`.
struct Verdict {
  std::string name, summary, reason;
  bool runs = false, chosen = false, automatic = false;
};
std::vector<Verdict> explain(const Query& q, const std::string& requested);

// Runs a call with a loaded plan (the executor, csrc/src/executor/).
void run_plan(Communicator& comm, const PlanRow& plan, const void* input, void* output, size_t count,
              const CollectiveOptions& opts);

}  // namespace mscomm
