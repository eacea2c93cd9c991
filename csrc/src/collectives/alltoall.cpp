// Alltoall, alltoallv and reduce_scatter.
//
// staged (one host): per block of the per-peer count, copy the blocks meant for other ranks
//   into my slot (segment p for rank p), one sync, then take segment `me` out of every peer's
//   slot (alltoall: copy; reduce_scatter: reduce together with my own block, in rank order).
// pairwise (any transport; alltoallv unless direct): N-1 rounds; in round k send to me+k while
//   receiving from me-k, chunk by chunk. Each pair checks that the sender's count is the
//   receiver's expected count.
// ring reduce_scatter (any transport): N-1 steps; each adds my block to the partial sum
//   received from the previous rank and passes it on; the last step leaves my own block.
// direct (one host, large; registered buffers or single-copy reads; alltoall and
//   reduce_scatter): sync, take block `me` straight out of every rank's input (copy, or reduce
//   in rank order), sync. alltoallv (single-copy reads, any size): see direct_alltoallv().
#include <algorithm>
#include <cstring>

#include "call.hpp"
#include "mscomm/collectives.hpp"
#include "mscomm/reduce.hpp"
#include "pipes.hpp"

namespace mscomm {

namespace {

enum Algorithm : uint8_t { kStaged = 1, kPairwise = 2, kRing = 3, kDirect = 4 };

size_t total(const std::vector<size_t>& v) {
  size_t s = 0;
  for (size_t x : v) s += x;
  return s;
}

// Pairwise exchange of byte ranges: send_off/send_len[p] to rank p, recv_off/recv_len[q] from q.
void pairwise(Call& c, const char* in, const std::vector<size_t>& send_off, const std::vector<size_t>& send_len,
              char* out, const std::vector<size_t>& recv_off, const std::vector<size_t>& recv_len) {
  const int n = c.size, me = c.rank;
  std::memcpy(out + recv_off[me], in + send_off[me], send_len[me]);
  Pipes pipes(c);
  for (int k = 1; k < n; ++k) {
    const int to = (me + k) % n, from = (me - k + n) % n;
    const CallDescriptor sd = pair_descriptor(c.desc, send_len[to]);
    const CallDescriptor rd = pair_descriptor(c.desc, recv_len[from]);
    pipes.exchange(to, in + send_off[to], send_len[to], from, out + recv_off[from], recv_len[from], &sd, &rd);
  }
  pipes.finish();
}

// alltoallv over single-copy reads: each rank announces its input and a table of (offset,
// length) per destination; every rank reads its entry of each peer's table, checks the length
// against what it expects, then reads the bytes.
void direct_alltoallv(Call& c, const char* in, size_t sbytes, const std::vector<size_t>& send_off,
                      const std::vector<size_t>& send_len, char* out, const std::vector<size_t>& recv_off,
                      const std::vector<size_t>& recv_len) {
  const int n = c.size, me = c.rank;
  std::vector<uint64_t> table(2 * static_cast<size_t>(n));
  for (int p = 0; p < n; ++p) {
    table[2 * p] = send_off[p];
    table[2 * p + 1] = send_len[p];
  }
  c.direct_begin(in, sbytes, table.data(), table.size() * sizeof(uint64_t));  // "output": the table
  c.copy_out(out + recv_off[me], in + send_off[me], send_len[me]);
  for (int k = 1; k < n; ++k) {
    const int p = (me + k) % n;
    uint64_t entry[2];
    c.read_peer(p, 1, 2 * static_cast<size_t>(me) * sizeof(uint64_t), sizeof(entry), entry);
    if (entry[1] != recv_len[p])
      c.comm.fail_everywhere(ErrorKind::InvalidArgument,
                             "alltoallv #" + std::to_string(c.desc.call) + ": rank " + std::to_string(p) + " sends " +
                                 std::to_string(entry[1] / c.es) + " elements to rank " + std::to_string(me) +
                                 ", which expects " + std::to_string(recv_len[p] / c.es) +
                                 " (recv_counts must match the senders' send_counts)");
    if (entry[1]) c.read_peer(p, 0, entry[0], entry[1], out + recv_off[p]);
  }
  c.direct_end();
}

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

}  // namespace

void alltoall(Communicator& comm, const void* input, void* output, size_t count, const CollectiveOptions& opts) {
  const size_t es = dtype_size(opts.dtype), bytes = count * es;
  const int n = comm.size(), me = comm.rank();
  auto in = static_cast<const char*>(input);
  auto out = static_cast<char*>(output);
  MSCOMM_CHECK_ARG(count == 0 || (in && out), "alltoall: null buffer with a non-zero count");
  MSCOMM_CHECK_ARG(in != out || count == 0, "alltoall: input and output must be different buffers");
  check_no_overlap("alltoall", input, bytes * n, output, bytes * n);
  if (n == 1) {
    if (bytes) std::memcpy(out, in, bytes);
    return;
  }
  const uint8_t algorithm = pick_moving(comm, "alltoall", opts.algorithm, bytes,
                                        direct_reads(comm, in, bytes * n, out, bytes * n), SingleCopyUse::Always,
                                        kStaged, kDirect, "pairwise",
                                        kPairwise);
  run_collective(comm, Collective::Alltoall, count, opts.dtype, ReduceOp::Sum, -1, opts.timeout_s, algorithm, [&](Call& c) {
    c.output_bytes(bytes * n);
    if (algorithm == kDirect) {
      c.direct_begin(in, bytes * n, out, bytes * n);
      c.copy_out(out + me * bytes, in + me * bytes, bytes);
      for (int p = 0; p < n; ++p)
        if (p != me) c.read_peer(p, 0, me * bytes, bytes, out + p * bytes);
      c.direct_end();
      return;
    }
    if (algorithm == kStaged) {
      c.copy_out(out + me * bytes, in + me * bytes, bytes);
      staged_blocks(c, in, count, [&](size_t off, size_t len, uint64_t phase, size_t seg) {
        for (int p = 0; p < n; ++p)
          if (p != me) c.copy_out(out + p * bytes + off * es, c.ctx.shm_slot(p, phase) + me * seg, len * es);
      });
      return;
    }
    std::vector<size_t> offs(n), lens(n, bytes);
    for (int p = 0; p < n; ++p) offs[p] = p * bytes;
    pairwise(c, in, offs, lens, out, offs, lens);
  });
}

void alltoallv(Communicator& comm, const void* input, const std::vector<size_t>& send_counts, void* output,
               const std::vector<size_t>& recv_counts, const CollectiveOptions& opts) {
  const size_t es = dtype_size(opts.dtype);
  const int n = comm.size();
  MSCOMM_CHECK_ARG(send_counts.size() == static_cast<size_t>(n) && recv_counts.size() == static_cast<size_t>(n),
                   "alltoallv: send_counts and recv_counts need one entry per rank (" + std::to_string(n) + ")");
  auto in = static_cast<const char*>(input);
  auto out = static_cast<char*>(output);
  const size_t sbytes = total(send_counts) * es, rbytes = total(recv_counts) * es;
  MSCOMM_CHECK_ARG((sbytes == 0 || in) && (rbytes == 0 || out), "alltoallv: null buffer with a non-zero count");
  check_no_overlap("alltoallv", input, sbytes, output, rbytes);
  MSCOMM_CHECK_ARG(in != out || (sbytes == 0 && rbytes == 0), "alltoallv: input and output must be different buffers");
  std::vector<size_t> soff(n), slen(n), roff(n), rlen(n);
  for (size_t p = 0, so = 0, ro = 0; p < static_cast<size_t>(n); ++p) {
    soff[p] = so * es;
    slen[p] = send_counts[p] * es;
    roff[p] = ro * es;
    rlen[p] = recv_counts[p] * es;
    so += send_counts[p];
    ro += recv_counts[p];
  }
  const int me = comm.rank();
  MSCOMM_CHECK_ARG(send_counts[me] == recv_counts[me], "alltoallv: send_counts[" + std::to_string(me) + "]=" +
                   std::to_string(send_counts[me]) + " (to itself) must equal recv_counts[" + std::to_string(me) +
                   "]=" + std::to_string(recv_counts[me]));
  if (n == 1) {
    if (slen[0]) std::memcpy(out, in, slen[0]);
    return;
  }
  // Counts differ between ranks, so the choice cannot depend on them: direct whenever every rank
  // can read every other's memory (min bytes 0).
  const uint8_t algorithm = comm.num_hosts() == 1 && single_copy_reads(comm) ? kDirect : kPairwise;
  run_collective(comm, Collective::Alltoallv, 0, opts.dtype, ReduceOp::Sum, -1, opts.timeout_s, algorithm, [&](Call& c) {
    c.output_bytes(rbytes);
    if (algorithm == kDirect) direct_alltoallv(c, in, sbytes, soff, slen, out, roff, rlen);
    else pairwise(c, in, soff, slen, out, roff, rlen);
  });
}

void reduce_scatter(Communicator& comm, const void* input, void* output, size_t count, const CollectiveOptions& opts) {
  const size_t es = dtype_size(opts.dtype), bytes = count * es;
  const int n = comm.size(), me = comm.rank();
  auto in = static_cast<const char*>(input);
  auto out = static_cast<char*>(output);
  MSCOMM_CHECK_ARG(count == 0 || (in && out), "reduce_scatter: null buffer with a non-zero count");
  if (out != in + me * bytes) check_no_overlap("reduce_scatter", input, bytes * n, output, bytes);
  const DataType dtype = opts.dtype;
  if (n == 1) {
    if (out != in && bytes) std::memmove(out, in, bytes);
    return;
  }
  const uint8_t algorithm = pick_moving(comm, "reduce_scatter", opts.algorithm, bytes,
                                        direct_reads(comm, in, bytes * n, out, bytes), SingleCopyUse::Always, kStaged,
                                        kDirect, "ring", kRing);
  run_collective(comm, Collective::ReduceScatter, count, dtype, opts.op, -1, opts.timeout_s, algorithm, [&](Call& c) {
    if (algorithm == kDirect) {
      c.direct_begin(in, bytes * n, out, bytes);
      std::vector<const void*> srcs(n);
      char* tmp = c.ctx.shm_slot(me, 0);
      const size_t chunk = std::max<size_t>(1, c.ctx.shm_slot_bytes / static_cast<size_t>(n) / es) * es;
      for (size_t off = 0; off < bytes; off += chunk) {
        const size_t len = std::min(chunk, bytes - off);
        for (int p = 0; p < n; ++p)
          srcs[p] = p == me ? in + me * bytes + off : c.peer_view(p, 0, me * bytes + off, len, tmp + p * chunk);
        reduce(out + off, srcs.data(), n, len / es, dtype, opts.op);
      }
      c.direct_end();
      return;
    }
    if (algorithm == kStaged) {
      std::vector<const void*> srcs(n);
      staged_blocks(c, in, count, [&](size_t off, size_t len, uint64_t phase, size_t seg) {
        for (int p = 0; p < n; ++p)
          srcs[p] = p == me ? in + me * bytes + off * es : c.ctx.shm_slot(p, phase) + me * seg;
        reduce(out + off * es, srcs.data(), n, len, dtype, opts.op);
      });
      return;
    }
    // Step t sends the partial sum of block me-t-1 (step 0: my input's) and receives the partial
    // of block me-t-2, adds my input's block, keeping it in `out`. The last step leaves block me.
    // In place (out is my input's block me), the partial sums need a buffer of their own: block
    // me is added only at the last step.
    const int next = (me + 1) % n, prev = (me + n - 1) % n;
    const ReduceOp pairwise_op = opts.op == ReduceOp::Avg ? ReduceOp::Sum : opts.op;
    std::vector<char> own;
    if (out == in + me * bytes) own.resize(bytes);
    char* work = own.empty() ? out : own.data();
    Pipes pipes(c);
    for (int t = 0; t < n - 1; ++t) {
      const int sblock = (me - t - 1 + 2 * n) % n, rblock = (me - t - 2 + 2 * n) % n;
      const char* send = t == 0 ? in + sblock * bytes : work;
      const bool last = t == n - 2;
      pipes.exchange(next, send, bytes, prev, work, bytes, [&](char* dst, const char* slot, size_t len) {
        c.ctx.data[next]->wait_sent(c.timeout);  // this chunk of `work` may still be on its way to next
        const size_t off = static_cast<size_t>(dst - work);
        const void* srcs[2] = {slot, in + rblock * bytes + off};
        reduce(dst, srcs, 2, len / es, dtype, pairwise_op);
        if (last && opts.op == ReduceOp::Avg) divide(dst, len / es, dtype, n);
      }, t == 0 ? &c.desc : nullptr, t == 0 ? &c.desc : nullptr);
    }
    pipes.finish();
    if (!own.empty()) std::memcpy(out, work, bytes);
  });
}

}  // namespace mscomm
