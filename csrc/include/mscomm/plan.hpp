// Plans: schedules given as data (docs/plan-format.md) and run by the executor over channels.
//
// A plan names N ranks and, per rank, an ordered list of steps over chunks of the input, output
// and scratch buffers (put, signal, wait, reduce, copy). Plan rank r runs on communicator rank r:
// the plan must be for exactly the communicator's size. load_plan() checks every index the
// executor will trust (ranks, peers, buffers, chunk indices, reduce fan-in), that every pair's
// signals and waits match, that the steps cannot deadlock and that every step moves chunks of one
// size; a plan that fails is refused with InvalidArgument naming the rank and step, on every rank.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "mscomm/communicator.hpp"
#include "mscomm/dtype.hpp"

namespace mscomm {

namespace executor {
struct Program;
struct Workspace;
}  // namespace executor

class Plan {
 public:
  // Collective: every rank passes the same plan JSON (a version-1 plan, or its subset
  // {"collective", "num_ranks", "k", "name"?, "ranks": [{"scratch_chunks", "steps"}]}). The
  // ranks compare digests; the executor's workspace is registered on the first load.
  static std::shared_ptr<Plan> load(Communicator& comm, const std::string& json, double timeout_s = -1);
  // Local: parses and checks the plan for rank `rank` of a `size`-rank communicator, without a
  // communicator (what load() does before it talks to the other ranks). Throws InvalidArgument.
  static void check(const std::string& json, int rank, int size);

  // Runs the plan. count is in elements, as for the collective of the same name (allreduce: the
  // buffer; allgather: each rank's input; reduce_scatter: each rank's output). In place when
  // input == output (allreduce), input == output + rank*count (allgather) or
  // output == input + rank*count (reduce_scatter).
  void run(const void* input, void* output, size_t count, DataType dtype, ReduceOp op, double timeout_s = -1);

  const std::string& name() const;
  const std::string& collective() const;
  int num_ranks() const;
  int k() const;
  const std::string& digest() const;  // hex; equal on every rank
  size_t steps() const;                // this rank's steps
  // False when this rank reads an input chunk after writing its output twin: in place, the plan
  // then runs from a private copy of the input.
  bool in_place_safe() const;

  ~Plan();

 private:
  Plan() = default;
  Communicator* comm_ = nullptr;
  std::shared_ptr<executor::Program> program_;
  std::shared_ptr<executor::Workspace> workspace_;
};

// Collective (every rank the same): makes the plan a row "plan:<name>" of the selection table of
// its collective on this communicator, so algorithm="plan:<name>" and MSCOMM_<NAME>_ALGO select it
// and the automatic choice takes it for messages (bytes per rank, as the selection table counts
// them) in [min_bytes, max_bytes]; max_bytes 0: only by name. A plan of the same name is replaced.
void offer_plan(Communicator& comm, std::shared_ptr<Plan> plan, size_t min_bytes, size_t max_bytes);

}  // namespace mscomm
