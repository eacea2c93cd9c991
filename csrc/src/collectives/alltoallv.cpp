// Alltoallv (uneven). pairwise (any transport), or direct (one host, single-copy reads, any
// size): see direct_alltoallv().
#include <algorithm>
#include <cstring>

#include "call.hpp"
#include "mscomm/collectives.hpp"
#include "pipes.hpp"
#include "selection.hpp"
#include "staged.hpp"

namespace mscomm {

namespace {

size_t total(const std::vector<size_t>& v) {
  size_t s = 0;
  for (size_t x : v) s += x;
  return s;
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

}  // namespace

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
  if (n == 1) check_requested(comm, Collective::Alltoallv, opts.algorithm);  // one rank: no row runs, but the name must exist
  if (n == 1) {
    if (slen[0]) std::memcpy(out, in, slen[0]);
    return;
  }
  // Counts differ between ranks, so the choice cannot depend on them: direct whenever every rank
  // can read every other's memory (min bytes 0).
  const DirectReads reads =
      comm.num_hosts() == 1 && single_copy_reads(comm) ? DirectReads::SingleCopy : DirectReads::None;
  const Algo algorithm = select({comm, Collective::Alltoallv, 0, reads}, opts.algorithm).algo();
  run_collective(comm, Collective::Alltoallv, 0, opts.dtype, ReduceOp::Sum, -1, opts.timeout_s, algorithm, [&](Call& c) {
    c.output_bytes(rbytes);
    if (algorithm == Algo::Direct) direct_alltoallv(c, in, sbytes, soff, slen, out, roff, rlen);
    else pairwise(c, in, soff, slen, out, roff, rlen);
  });
}

}  // namespace mscomm
