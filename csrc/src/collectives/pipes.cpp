#include "pipes.hpp"

namespace mscomm {

CallDescriptor pair_descriptor(const CallDescriptor& call, size_t bytes) {
  CallDescriptor d = call;
  d.count = bytes / dtype_size(static_cast<DataType>(call.dtype));  // elements, as errors show them
  return d;
}

int Pipes::entry(const CallDescriptor& d) const {
  const bool p2p = d.collective == static_cast<uint32_t>(Collective::SendRecv);
  return static_cast<int>((p2p ? 2 : 0) + d.call % 2);
}

void Pipes::send(int peer, const void* src, size_t bytes, const CallDescriptor* desc) {
  CollectiveContext& ctx = c_.ctx;
  const uint64_t g = ctx.sent[peer]++;
  if (g >= 2) ctx.credit[peer]->wait(c_.timeout);  // the slot's previous chunk was consumed
  if (desc) {
    ctx.outgoing[peer] = *desc;
    ctx.data[peer]->put_from(ctx.descriptor_offset(c_.rank, entry(*desc)), &ctx.outgoing[peer], sizeof(CallDescriptor));
  }
  if (bytes) ctx.data[peer]->put_from(ctx.p2p_offset(c_.rank, g), src, bytes);
  ctx.data[peer]->signal();
  used_[peer] = 1;
}

const char* Pipes::receive(int peer, const CallDescriptor* expect) {
  CollectiveContext& ctx = c_.ctx;
  const uint64_t g = ctx.received[peer]++;
  ctx.data[peer]->wait(c_.timeout);
  if (expect) c_.check(peer, ctx.descriptor(c_.rank, peer, entry(*expect)), *expect);
  return ctx.p2p_slot(peer, g);
}

void Pipes::release(int peer) { c_.ctx.credit[peer]->signal(); }

void Pipes::finish() {
  for (int p = 0; p < c_.size; ++p)
    if (used_[p]) c_.ctx.data[p]->wait_sent(c_.timeout);
}

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

}  // namespace mscomm
