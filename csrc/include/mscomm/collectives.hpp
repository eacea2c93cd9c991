// Collective operations. Free functions taking an options object (algorithm, timeout per call);
// every rank of the communicator must call the same collective with matching arguments.
#pragma once
#include <cstddef>
#include <string>

#include "mscomm/communicator.hpp"
#include "mscomm/dtype.hpp"

namespace mscomm {

struct AllreduceOptions {
  DataType dtype = DataType::Float32;
  ReduceOp op = ReduceOp::Sum;
  double timeout_s = -1;      // < 0: the communicator's timeout
  std::string algorithm;      // "" or "auto": chosen by size and transport; else oneshot, rsag, ring
};

// Reduces `count` elements of `input` across all ranks into `output` on every rank. `output` may
// equal `input` (in place); otherwise the two must not overlap.
void allreduce(Communicator& comm, const void* input, void* output, size_t count, const AllreduceOptions& opts);

// The algorithm allreduce would run for these arguments (for benchmarks and docs).
std::string allreduce_algorithm(Communicator& comm, size_t bytes, const std::string& requested);

}  // namespace mscomm
