// Pipes: chunked streams between this rank and its peers, over channels, so one algorithm runs
// over shared memory and TCP alike.
//
// A chunk from rank s lands in one of the receiver's two slots for s (chunk number mod 2); the
// sender signals, the receiver consumes the chunk and returns a credit; before reusing a slot
// the sender waits for the credit of the chunk that last used it. The first chunk of a call to
// a peer carries the call descriptor, which the receiver checks. Counters continue across
// calls, so every pair must issue its transfers in the same order on both sides.
#pragma once
#include <algorithm>
#include <cstring>
#include <vector>

#include "call.hpp"

namespace mscomm {

class Pipes {
 public:
  explicit Pipes(Call& c) : c_(c), used_(c.size, 0) {}
  size_t chunk() const { return c_.ctx.chunk_bytes; }

  void send(int peer, const void* src, size_t bytes, const CallDescriptor* desc = nullptr);
  // Waits for the next chunk from `peer`, checks the descriptor it carries against `expect`,
  // and returns the slot holding it (valid until release(peer)).
  const char* receive(int peer, const CallDescriptor* expect = nullptr);
  void release(int peer);
  // Returns once no earlier send still reads its source.
  void finish();

  // Sends `sbytes` from `src` to `to` while receiving `rbytes` from `from` (either rank may be
  // -1), chunk by chunk and interleaved so that pairs and rings cannot deadlock.
  // consume(dst, slot, bytes) lands each chunk; `desc` is sent to `to`, `expect` checked from `from`.
  template <class Consume>
  void exchange(int to, const char* src, size_t sbytes, int from, char* dst, size_t rbytes, Consume&& consume,
                const CallDescriptor* desc, const CallDescriptor* expect) {
    const size_t k = chunk();
    const size_t ns = to < 0 ? 0 : std::max<size_t>(1, (sbytes + k - 1) / k);
    const size_t nr = from < 0 ? 0 : std::max<size_t>(1, (rbytes + k - 1) / k);
    for (size_t i = 0; i < std::max(ns, nr); ++i) {
      if (i < ns) send(to, src + i * k, std::min(k, sbytes - std::min(sbytes, i * k)), i == 0 ? desc : nullptr);
      if (i < nr) {
        const char* slot = receive(from, i == 0 ? expect : nullptr);
        const size_t len = std::min(k, rbytes - std::min(rbytes, i * k));
        if (len) consume(dst + i * k, slot, len);
        release(from);
      }
    }
  }
  void exchange(int to, const char* src, size_t sbytes, int from, char* dst, size_t rbytes,
                const CallDescriptor* desc, const CallDescriptor* expect) {
    exchange(to, src, sbytes, from, dst, rbytes, [](char* d, const char* s, size_t n) { std::memcpy(d, s, n); }, desc,
             expect);
  }

 private:
  int entry(const CallDescriptor& d) const;
  Call& c_;
  std::vector<char> used_;
};

// Pairwise exchange of byte ranges (alltoall, alltoallv): N-1 rounds; in round k send
// send_off/send_len[to] to rank me+k while receiving recv_off/recv_len[from] from me-k.
void pairwise(Call& c, const char* in, const std::vector<size_t>& send_off, const std::vector<size_t>& send_len,
              char* out, const std::vector<size_t>& recv_off, const std::vector<size_t>& recv_len);

// The descriptor of one point-to-point leg of a call: the call's, with the pair's element count.
CallDescriptor pair_descriptor(const CallDescriptor& call, size_t bytes);

}  // namespace mscomm
