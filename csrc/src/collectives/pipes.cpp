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

}  // namespace mscomm
