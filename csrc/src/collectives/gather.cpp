// Gather: the root receives from every rank in turn, chunk by chunk.
#include <algorithm>
#include <cstring>

#include "call.hpp"
#include "mscomm/collectives.hpp"
#include "pipes.hpp"
#include "selection.hpp"
#include "staged.hpp"

namespace mscomm {

void gather(Communicator& comm, const void* input, void* output, size_t count, const CollectiveOptions& opts) {
  const size_t es = dtype_size(opts.dtype), bytes = count * es;
  const int n = comm.size(), me = comm.rank(), root = opts.root;
  check_root("gather", root, n);
  const bool is_root = me == root;
  auto in = static_cast<const char*>(input);
  auto out = static_cast<char*>(output);
  MSCOMM_CHECK_ARG(count == 0 || (in && (out || !is_root)), "gather: null buffer with a non-zero count");
  if (is_root) {
    if (in != out + me * bytes) check_no_overlap("gather", input, bytes, output, bytes * n);
    copy_if_distinct(out + me * bytes, in, bytes);
  }
  if (n == 1) check_requested(comm, Collective::Gather, opts.algorithm);  // one rank: no row runs, but the name must exist
  if (n == 1) return;
  run_collective(comm, Collective::Gather, count, opts.dtype, ReduceOp::Sum, root, opts.timeout_s, select({comm, Collective::Gather, bytes}, opts.algorithm).algo(), [&](Call& c) {
    Pipes pipes(c);
    const CallDescriptor d = pair_descriptor(c.desc, bytes);
    if (!is_root) {
      pipes.exchange(root, in, bytes, -1, nullptr, 0, &d, nullptr);
    } else {
      for (int r = 0; r < n; ++r)
        if (r != me) pipes.exchange(-1, nullptr, 0, r, out + r * bytes, bytes, nullptr, &d);
    }
    pipes.finish();
  });
}

}  // namespace mscomm
