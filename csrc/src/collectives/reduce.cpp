// Reduce: rsag on one host (see staged.hpp), chain across hosts.
//
// chain (any transport): ranks form a chain ending at the root; each adds its input to the
//   partial sums flowing through it, chunk by chunk.
#include <algorithm>
#include <cstring>

#include "call.hpp"
#include "mscomm/collectives.hpp"
#include "mscomm/reduce.hpp"
#include "pipes.hpp"
#include "selection.hpp"
#include "staged.hpp"

namespace mscomm {

namespace {

void chain(Call& c, const char* input, char* output, size_t count, ReduceOp op, int root) {
  // Position 0 is the root; partial sums flow from position n-1 down to it.
  const int n = c.size, pos = (c.rank - root + n) % n;
  const int toward = (c.rank + n - 1) % n, from = (c.rank + 1) % n;
  const DataType dtype = static_cast<DataType>(c.desc.dtype);
  const ReduceOp pairwise = op == ReduceOp::Avg ? ReduceOp::Sum : op;
  Pipes pipes(c);
  const size_t k = pipes.chunk(), bytes = count * c.es;
  const size_t chunks = std::max<size_t>(1, (bytes + k - 1) / k);
  for (size_t i = 0; i < chunks; ++i) {
    const size_t off = i * k, len = std::min(k, bytes - std::min(bytes, off));
    const CallDescriptor* d = i == 0 ? &c.desc : nullptr;
    if (pos == n - 1) {  // the far end: its input starts the chain
      pipes.send(toward, input + off, len, d);
      continue;
    }
    const char* slot = pipes.receive(from, d);
    const void* srcs[2] = {input + off, slot};
    if (pos == 0) {
      reduce(output + off, srcs, 2, len / c.es, dtype, pairwise);
      if (op == ReduceOp::Avg) divide(output + off, len / c.es, dtype, n);
    } else {
      char* partial = const_cast<char*>(slot);  // our own receive slot: add in place, pass it on
      reduce(partial, srcs, 2, len / c.es, dtype, pairwise);
      pipes.send(toward, partial, len, d);
      c.ctx.data[toward]->wait_sent(c.timeout);  // the slot is about to be handed back
    }
    pipes.release(from);
  }
  pipes.finish();
}

}  // namespace

void reduce(Communicator& comm, const void* input, void* output, size_t count, const CollectiveOptions& opts) {
  const size_t bytes = count * dtype_size(opts.dtype);
  check_root("reduce", opts.root, comm.size());
  const bool root = comm.rank() == opts.root;
  MSCOMM_CHECK_ARG(count == 0 || (input && (output || !root)), "reduce: null buffer with a non-zero count");
  if (root) check_no_overlap("reduce", input, bytes, output, bytes);
  auto in = static_cast<const char*>(input);
  auto out = static_cast<char*>(output);
  if (comm.size() == 1) check_requested(comm, Collective::Reduce, opts.algorithm);  // one rank: no row runs, but the name must exist
  if (comm.size() == 1) {
    if (in != out && count) std::memmove(out, in, bytes);
    return;
  }
  const Algo algorithm = select({comm, Collective::Reduce, bytes}, opts.algorithm).algo();
  run_collective(comm, Collective::Reduce, count, opts.dtype, opts.op, opts.root, opts.timeout_s, algorithm, [&](Call& c) {
    if (algorithm == Algo::Rsag) rsag(c, comm.local_ranks(), in, out, count, opts.op, opts.root);
    else chain(c, in, out, count, opts.op, opts.root);
  });
}

}  // namespace mscomm
