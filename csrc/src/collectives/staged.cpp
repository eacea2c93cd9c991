// rsag, the staged reduction: see allreduce.cpp for the words used.
#include "staged.hpp"

#include "mscomm/reduce.hpp"

namespace mscomm {

void rsag(Call& c, const std::vector<int>& members, const char* input, char* output, size_t count, ReduceOp op,
          int root, const std::function<void(char*, size_t)>& across) {
  const int n = static_cast<int>(members.size());
  const int me = static_cast<int>(std::find(members.begin(), members.end(), c.rank) - members.begin());
  const size_t block = c.ctx.shm_slot_bytes / c.es;
  const DataType dtype = static_cast<DataType>(c.desc.dtype);
  std::vector<const void*> srcs(n);
  c.publish_descriptor();
  size_t off = 0;
  do {  // at least one block, so even an empty call syncs (descriptor slots rely on it)
    const size_t len = std::min(block, count - off);
    const uint64_t phase = c.ctx.shm_phase++;
    char* mine = c.ctx.shm_slot(c.rank, phase);
    auto slot = [&](int r) { return c.ctx.shm_slot(members[r], phase); };
    auto lo = [&](int r) { return seg_begin(len, n, r) * c.es; };
    auto bytes = [&](int r) { return lo(r + 1) - lo(r); };
    const char* in = input + off * c.es;
    // Peers reduce their segments from my slot; my own segment they never read, so it is not
    // copied in: I reduce it straight from my input.
    for (int r = 0; r < n; ++r)
      if (r != me) std::memcpy(mine + lo(r), in + lo(r), bytes(r));
    c.sync_local();
    if (off == 0) c.check_local_descriptors();
    for (int r = 0; r < n; ++r) srcs[r] = r == me ? in + lo(me) : slot(r) + lo(me);
    reduce(mine + lo(me), srcs.data(), n, bytes(me) / c.es, dtype, op);
    if (across) across(mine + lo(me), bytes(me) / c.es);
    c.sync_local();
    if (root < 0 || c.rank == root) {
      char* out = output + off * c.es;
      for (int r = 0; r < n; ++r) c.copy_out(out + lo(r), slot(r) + lo(r), bytes(r));
    }
    off += len;
  } while (off < count);
}

}  // namespace mscomm
