// The direct path's shared steps: how peers' buffers are read (registered mappings or
// single-copy reads) and whether the automatic choice takes it.
#include <algorithm>
#include <cstring>
#include <vector>

#include "call.hpp"
#include "mscomm/collectives.hpp"
#include "mscomm/reduce.hpp"

namespace mscomm {

namespace {
const UserBuffer* lookup(const CollectiveContext& ctx, uint64_t handle) {
  auto it = ctx.buffers.find(handle);
  return it == ctx.buffers.end() ? nullptr : &it->second;
}
}  // namespace

DirectReads direct_reads(Communicator& comm, const void* in, size_t in_bytes, const void* out, size_t out_bytes) {
  if (comm.size() == 1 || comm.num_hosts() != 1) return DirectReads::None;
  CollectiveContext& ctx = comm.collectives();
  ctx.connect(comm);  // collective, but every rank gets here at the same call: the test above agrees
  const bool registered = !ctx.buffers.empty() && (!in || find_registered(ctx, in, in_bytes).handle) &&
                          (!out || find_registered(ctx, out, out_bytes).handle);
  if (registered) return DirectReads::Registered;
  return ctx.cma ? DirectReads::SingleCopy : DirectReads::None;
}

bool direct_automatic(Communicator& comm, DirectReads reads, size_t message_bytes, SingleCopyUse use) {
  const Tuning& tuning = comm.collectives().tuning;
  if (reads == DirectReads::None || message_bytes < tuning.direct_min_bytes) return false;
  if (reads == DirectReads::Registered || use == SingleCopyUse::Always) return true;
  if (use == SingleCopyUse::Never || comm.oversubscribed()) return false;
  return use == SingleCopyUse::UnlessOversubscribed || message_bytes <= tuning.cma_max_bytes;
}

void Call::direct_begin(const void* in, size_t in_bytes, const void* out, size_t out_bytes) {
  // Registered: (handle, offset in it); otherwise (0, address), read with process_vm_readv.
  const BufferRef in_ref = in ? find_registered(ctx, in, in_bytes) : BufferRef{};
  const BufferRef out_ref = out ? find_registered(ctx, out, out_bytes) : BufferRef{};
  desc.input = {in_ref.handle, in_ref.handle ? in_ref.offset : reinterpret_cast<uintptr_t>(in)};
  desc.output = {out_ref.handle, out_ref.handle ? out_ref.offset : reinterpret_cast<uintptr_t>(out)};
  own_input = in;
  publish_descriptor();
  ++ctx.shm_phase;  // the next call publishes into the other entry
  sync_local();
  check_local_descriptors();
}

// Where a peer's registered buffer is mapped here, or null if the peer announced a plain address.
static const char* registered_peer_buffer(const Call& c, int peer, int which, size_t offset, size_t bytes,
                                          uint64_t* address) {
  CallDescriptor d;
  std::memcpy(&d, c.ctx.descriptor(peer, peer, c.entry), sizeof(d));
  const BufferRef& ref = which ? d.output : d.input;
  const uint64_t handle = ref.handle, base = ref.offset;
  if (handle == 0) {
    if (!c.ctx.cma)
      throw InternalError(std::string(collective_name(c.desc.collective)) + ": rank " + std::to_string(peer) +
                          " took the direct path with an unregistered buffer, but single-copy reads are off here");
    *address = base + offset;
    return nullptr;
  }
  const UserBuffer* b = lookup(c.ctx, handle);
  if (!b || !b->peer_ptr[peer] || base > b->peer_bytes[peer] || offset > b->peer_bytes[peer] - base ||
      bytes > b->peer_bytes[peer] - base - offset)
    throw InternalError(std::string(collective_name(c.desc.collective)) + ": rank " + std::to_string(peer) +
                        " announced a registered " + (which ? "output" : "input") + " this rank cannot reach");
  return b->peer_ptr[peer] + base + offset;
}

const char* Call::peer_view(int peer, int which, size_t offset, size_t bytes, char* tmp) const {
  uint64_t address = 0;
  if (const char* p = registered_peer_buffer(*this, peer, which, offset, bytes, &address)) return p;
  cma_read(ctx.pids[peer], address, tmp, bytes, peer);
  return tmp;
}

void Call::reduce_peers(size_t offset, size_t bytes, char* dst, ReduceOp op) const {
  const int n = size;
  char* tmp = ctx.shm_slot(rank, 0);
  const size_t chunk = std::max<size_t>(1, ctx.shm_slot_bytes / static_cast<size_t>(n) / es) * es;
  const auto* mine = static_cast<const char*>(own_input) + offset;
  std::vector<const void*> srcs(n);
  for (size_t off = 0; off < bytes; off += chunk) {
    const size_t len = std::min(chunk, bytes - off);
    for (int r = 0; r < n; ++r) srcs[r] = r == rank ? mine + off : peer_view(r, 0, offset + off, len, tmp + r * chunk);
    reduce(dst + off, srcs.data(), n, len / es, static_cast<DataType>(desc.dtype), op);
  }
}

void Call::read_peer(int peer, int which, size_t offset, size_t bytes, void* dst) const {
  const char* p = peer_view(peer, which, offset, bytes, static_cast<char*>(dst));
  if (p != dst) copy_out(dst, p, bytes);
}

void Call::copy_out(void* dst, const void* src, size_t bytes) const {
  if (stream) stream_copy(dst, src, bytes);
  else std::memcpy(dst, src, bytes);
}

}  // namespace mscomm
