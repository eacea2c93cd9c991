// Collective operations: free functions taking an options object (algorithm and timeout per
// call). Every rank of the communicator must call the same collective with matching arguments;
// a disagreement raises InvalidArgument on every rank. Counts are in elements of opts.dtype.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "mscomm/communicator.hpp"
#include "mscomm/dtype.hpp"

namespace mscomm {

struct CollectiveOptions {
  DataType dtype = DataType::Float32;
  ReduceOp op = ReduceOp::Sum;
  int root = 0;
  double timeout_s = -1;   // < 0: the communicator's timeout
  std::string algorithm;   // "" or "auto": from the tuning table (docs/algorithms.md lists the names)
};

// output[i] = op over ranks of input[i], on every rank. output may equal input (in place).
void allreduce(Communicator& comm, const void* input, void* output, size_t count, const CollectiveOptions& opts);
// As allreduce, but only the root receives; output is not touched on other ranks.
void reduce(Communicator& comm, const void* input, void* output, size_t count, const CollectiveOptions& opts);
// The root's buffer is copied to every rank's.
void broadcast(Communicator& comm, void* buffer, size_t count, const CollectiveOptions& opts);
// output (size x count) gets every rank's input in rank order; input may be output + rank*count.
void allgather(Communicator& comm, const void* input, void* output, size_t count, const CollectiveOptions& opts);
// input holds size x count; rank r gets op over ranks of input[r*count, +count).
void reduce_scatter(Communicator& comm, const void* input, void* output, size_t count, const CollectiveOptions& opts);
// input and output hold size x count: block p of input goes to rank p, block q of output came from q.
void alltoall(Communicator& comm, const void* input, void* output, size_t count, const CollectiveOptions& opts);
// Uneven all-to-all: send_counts[p] elements to rank p, recv_counts[q] from rank q, packed in rank order.
void alltoallv(Communicator& comm, const void* input, const std::vector<size_t>& send_counts, void* output,
               const std::vector<size_t>& recv_counts, const CollectiveOptions& opts);
// The root's output (size x count) gets every rank's input in rank order.
void gather(Communicator& comm, const void* input, void* output, size_t count, const CollectiveOptions& opts);
// Block r of the root's input (size x count) goes to rank r's output.
void scatter(Communicator& comm, const void* input, void* output, size_t count, const CollectiveOptions& opts);
// Point to point. Transfers between a pair are matched in order (with their tags checked).
void send(Communicator& comm, const void* buffer, size_t count, int peer, int tag, const CollectiveOptions& opts);
void recv(Communicator& comm, void* buffer, size_t count, int peer, int tag, const CollectiveOptions& opts);
void barrier(Communicator& comm, const CollectiveOptions& opts);

// The algorithm allreduce would run for these arguments (for benchmarks and docs).
// Collective: registers one buffer per rank (sizes may differ) and returns its handle, the same
// on every rank. Later collectives whose buffers all lie in registered buffers, on every rank of
// a one-host communicator, skip the staging copy. The buffer's pages (rounded out to whole pages)
// move into shared memory in place; keep the buffer alive until deregister_buffer().
uint64_t register_buffer(Communicator& comm, void* ptr, size_t bytes, double timeout_s);
// Whether same-host ranks read each other's unregistered buffers with process_vm_readv (probed
// when the collectives first connect, which this call does: collective on first use).
bool single_copy_reads(Communicator& comm);
// Local: makes the buffer's pages private again (contents kept) and drops the peers' mappings.
void deregister_buffer(Communicator& comm, uint64_t handle);

// The selection table (docs/algorithms.md): every row of `collective` ("allreduce", ...) with
// whether it would run a call of `bytes` per rank on these buffers (null: unknown, taken as not
// registered) and why not, and which row `requested` ("" or "auto": the automatic choice)
// takes. Collective on a communicator's first use (it connects the collectives).
struct AlgorithmInfo {
  std::string name, summary, reason;  // reason: why it cannot run this call (empty: it can)
  bool runs = false, chosen = false, automatic = false;
};
std::vector<AlgorithmInfo> algorithms(Communicator& comm, const std::string& collective, size_t bytes,
                                      const void* input, size_t input_bytes, const void* output, size_t output_bytes,
                                      bool in_place, const std::string& requested = "");
// The built-in rows of `collective` as (name, summary), in the order of the automatic choice.
std::vector<std::pair<std::string, std::string>> algorithm_table(const std::string& collective);

}  // namespace mscomm
