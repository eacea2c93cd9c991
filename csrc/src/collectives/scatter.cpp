// Scatter: the root sends to every rank in turn, chunk by chunk.
#include <algorithm>
#include <cstring>

#include "call.hpp"
#include "mscomm/collectives.hpp"
#include "pipes.hpp"
#include "selection.hpp"
#include "staged.hpp"

namespace mscomm {

void scatter(Communicator& comm, const void* input, void* output, size_t count, const CollectiveOptions& opts) {
  const size_t es = dtype_size(opts.dtype), bytes = count * es;
  const int n = comm.size(), me = comm.rank(), root = opts.root;
  check_root("scatter", root, n);
  const bool is_root = me == root;
  auto in = static_cast<const char*>(input);
  auto out = static_cast<char*>(output);
  MSCOMM_CHECK_ARG(count == 0 || (out && (in || !is_root)), "scatter: null buffer with a non-zero count");
  if (is_root) {
    if (out != in + me * bytes) check_no_overlap("scatter", input, bytes * n, output, bytes);
    copy_if_distinct(out, in + me * bytes, bytes);
  }
  if (n == 1) check_requested(comm, Collective::Scatter, opts.algorithm);  // one rank: no row runs, but the name must exist
  if (n == 1) return;
  run_collective(comm, Collective::Scatter, count, opts.dtype, ReduceOp::Sum, root, opts.timeout_s, select({comm, Collective::Scatter, bytes}, opts.algorithm).algo(), [&](Call& c) {
    Pipes pipes(c);
    const CallDescriptor d = pair_descriptor(c.desc, bytes);
    if (!is_root) {
      pipes.exchange(-1, nullptr, 0, root, out, bytes, nullptr, &d);
    } else {
      for (int r = 0; r < n; ++r)
        if (r != me) pipes.exchange(r, in + r * bytes, bytes, -1, nullptr, 0, &d, nullptr);
    }
    pipes.finish();
  });
}

}  // namespace mscomm
