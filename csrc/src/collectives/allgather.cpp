// Allgather, broadcast, gather and scatter.
//
// staged (one host): per block, the rank(s) holding data copy it into their shm slot, one sync,
//   then every rank copies what it needs straight out of the owners' slots. Slots alternate, so
//   one sync per block is enough: a slot is rewritten only after the next sync, which every
//   reader passes only when done reading.
// ring allgather (any transport): N-1 steps; each forwards the segment received last step.
// chain broadcast (any transport): ranks form a chain from the root; each chunk is received from
//   the previous rank and forwarded to the next, so the chain is pipelined.
// gather / scatter: the root exchanges with every rank in turn, chunk by chunk.
// direct (one host, large; registered buffers or single-copy reads): sync, every rank copies
//   what it needs straight out of the owners' buffers, sync. One copy instead of two.
#include <algorithm>
#include <cstring>

#include "call.hpp"
#include "mscomm/collectives.hpp"
#include "pipes.hpp"

namespace mscomm {

namespace {

enum Algorithm : uint8_t { kStaged = 1, kRing = 2, kChain = 3, kRooted = 4, kDirect = 5 };

// Runs body(off, len, phase) for every block of `count` elements, one sync after the copy-in.
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

void copy_if_distinct(void* dst, const void* src, size_t bytes) {
  if (dst != src && bytes) std::memmove(dst, src, bytes);
}

}  // namespace

void allgather(Communicator& comm, const void* input, void* output, size_t count, const CollectiveOptions& opts) {
  const size_t es = dtype_size(opts.dtype), bytes = count * es;
  const int n = comm.size(), me = comm.rank();
  MSCOMM_CHECK_ARG(count == 0 || (input && output), "allgather: null buffer with a non-zero count");
  auto in = static_cast<const char*>(input);
  auto out = static_cast<char*>(output);
  if (in != out + me * bytes) check_no_overlap("allgather", input, bytes, output, bytes * n);
  copy_if_distinct(out + me * bytes, in, bytes);
  if (n == 1) return;
  const uint8_t algorithm = pick_moving(comm, "allgather", opts.algorithm, bytes,
                                        direct_reads(comm, in, bytes, out, bytes * n), SingleCopyUse::Bounded, kStaged,
                                        kDirect, "ring", kRing);
  run_collective(comm, Collective::Allgather, count, opts.dtype, ReduceOp::Sum, -1, opts.timeout_s, algorithm, [&](Call& c) {
    c.output_bytes(bytes * n);
    if (algorithm == kDirect) {
      c.direct_begin(in, bytes, out, bytes * n);
      for (int r = 0; r < n; ++r)
        if (r != me) c.read_peer(r, 0, 0, bytes, out + r * bytes);
      c.direct_end();
      return;
    }
    if (algorithm == kStaged) {
      staged(c, count, c.ctx.shm_slot_bytes / es,
             [&](size_t off, size_t len, char* slot) { std::memcpy(slot, in + off * es, len * es); },
             [&](size_t off, size_t len, uint64_t phase) {
               for (int r = 0; r < n; ++r)
                 if (r != me) c.copy_out(out + r * bytes + off * es, c.ctx.shm_slot(r, phase), len * es);
             });
      return;
    }
    Pipes pipes(c);
    const int next = (me + 1) % n, prev = (me + n - 1) % n;
    for (int t = 0; t < n - 1; ++t) {
      const int s = (me - t + n) % n, r = (me - t - 1 + n) % n;
      pipes.exchange(next, out + s * bytes, bytes, prev, out + r * bytes, bytes, t == 0 ? &c.desc : nullptr,
                     t == 0 ? &c.desc : nullptr);
    }
    pipes.finish();
  });
}

void broadcast(Communicator& comm, void* buffer, size_t count, const CollectiveOptions& opts) {
  const size_t es = dtype_size(opts.dtype), bytes = count * es;
  const int n = comm.size(), me = comm.rank(), root = opts.root;
  check_root("broadcast", root, n);
  MSCOMM_CHECK_ARG(count == 0 || buffer, "broadcast: null buffer with a non-zero count");
  if (n == 1) return;
  auto buf = static_cast<char*>(buffer);
  const uint8_t algorithm = pick_moving(comm, "broadcast", opts.algorithm, bytes,
                                        direct_reads(comm, nullptr, 0, buf, bytes), SingleCopyUse::Never, kStaged,
                                        kDirect, "chain", kChain);
  run_collective(comm, Collective::Broadcast, count, opts.dtype, ReduceOp::Sum, root, opts.timeout_s, algorithm, [&](Call& c) {
    c.output_bytes(bytes);
    if (algorithm == kDirect) {
      c.direct_begin(nullptr, 0, buf, bytes);
      if (me != root) c.read_peer(root, 1, 0, bytes, buf);
      c.direct_end();
      return;
    }
    if (algorithm == kStaged) {
      staged(c, count, c.ctx.shm_slot_bytes / es,
             [&](size_t off, size_t len, char* slot) {
               if (me == root) std::memcpy(slot, buf + off * es, len * es);
             },
             [&](size_t off, size_t len, uint64_t phase) {
               if (me != root) c.copy_out(buf + off * es, c.ctx.shm_slot(root, phase), len * es);
             });
      return;
    }
    const int pos = (me - root + n) % n, next = (me + 1) % n, prev = (me + n - 1) % n;
    Pipes pipes(c);
    const size_t k = pipes.chunk(), chunks = std::max<size_t>(1, (bytes + k - 1) / k);
    for (size_t i = 0; i < chunks; ++i) {
      const size_t off = i * k, len = std::min(k, bytes - std::min(bytes, off));
      const CallDescriptor* d = i == 0 ? &c.desc : nullptr;
      if (pos > 0) {
        const char* slot = pipes.receive(prev, d);
        std::memcpy(buf + off, slot, len);
        pipes.release(prev);
      }
      if (pos < n - 1) pipes.send(next, buf + off, len, d);
    }
    pipes.finish();
  });
}

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
  if (n == 1) return;
  run_collective(comm, Collective::Gather, count, opts.dtype, ReduceOp::Sum, root, opts.timeout_s, kRooted, [&](Call& c) {
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
  if (n == 1) return;
  run_collective(comm, Collective::Scatter, count, opts.dtype, ReduceOp::Sum, root, opts.timeout_s, kRooted, [&](Call& c) {
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
