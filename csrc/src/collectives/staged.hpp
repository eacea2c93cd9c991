// The one-host mechanisms the shared-memory algorithms share: the staged block loop (copy into
// my shm slot, one sync, read out of the owners' slots) and the staged reduction (rsag).
#pragma once
#include <algorithm>
#include <cstring>
#include <functional>
#include <vector>

#include "call.hpp"

namespace mscomm {

// Start of part i of n elements split into `parts` nearly equal parts.
inline size_t seg_begin(size_t n, int parts, int i) { return n * static_cast<size_t>(i) / static_cast<size_t>(parts); }

inline void copy_if_distinct(void* dst, const void* src, size_t bytes) {
  if (dst != src && bytes) std::memmove(dst, src, bytes);
}

// Runs copy_in(off, len, slot) then, after one sync, copy_out(off, len, phase) for every block of
// `count` elements.
template <class CopyIn, class CopyOut>
void staged(Call& c, size_t count, size_t block, CopyIn&& copy_in, CopyOut&& copy_out) {
  c.publish_descriptor();
  size_t off = 0;
  do {
    const size_t len = std::min(block, count - off);
    const uint64_t phase = c.ctx.shm_phase++;
    copy_in(off, len, c.ctx.shm_slot(c.rank, phase));
    c.sync_local();
    if (off == 0) c.check_local_descriptors();
    copy_out(off, len, phase);
    off += len;
  } while (off < count);
}

// Per block of the per-peer count: copy the blocks meant for other ranks into my slot (segment p
// for rank p), one sync, then take(off, len, phase, seg) reads segment `me` out of the slots.
template <class Out>
void staged_blocks(Call& c, const char* in, size_t count, Out&& take) {
  const int n = c.size, me = c.rank;
  const size_t es = c.es, bytes = count * es;
  const size_t per_peer = std::max<size_t>(1, c.ctx.shm_slot_bytes / es / static_cast<size_t>(n));
  const size_t seg = per_peer * es;
  c.publish_descriptor();
  size_t off = 0;
  do {
    const size_t len = std::min(per_peer, count - off);
    const uint64_t phase = c.ctx.shm_phase++;
    char* mine = c.ctx.shm_slot(me, phase);
    for (int p = 0; p < n; ++p)
      if (p != me) std::memcpy(mine + p * seg, in + p * bytes + off * es, len * es);
    c.sync_local();
    if (off == 0) c.check_local_descriptors();
    take(off, len, phase, seg);
    off += len;
  } while (off < count);
}

// Staged reduction on `members` (same-host ranks, this one included). root < 0: every member
// receives the result (allreduce); else only the root does. `across(segment, count)`, when given,
// runs on my reduced segment before the others read it (hierarchical: the inter-host allreduce).
void rsag(Call& c, const std::vector<int>& members, const char* input, char* output, size_t count, ReduceOp op,
          int root, const std::function<void(char*, size_t)>& across = nullptr);

}  // namespace mscomm
