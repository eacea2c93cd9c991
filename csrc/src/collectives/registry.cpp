// Registered user buffers and the direct path's shared steps.
//
// register_buffer moves the buffer's pages into a shared-memory segment in place (same address,
// same contents) and maps every same-host peer's segment of the same registration, so later
// collectives on it read peers' buffers where they are instead of through the staging slots.
// Unregistered buffers take the direct path too where the kernel lets ranks read each other's
// memory (process_vm_readv, "cross-memory attach"; probed once per communicator): one copy,
// straight from the peer's buffer.
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>

#include <cstring>

#include "call.hpp"
#include "mscomm/collectives.hpp"
#include "mscomm/reduce.hpp"

namespace mscomm {

namespace {
struct Extent {
  uint64_t offset, bytes;  // where the buffer starts in its segment, and its length
};

// The whole pages [first, end) that hold [p, p + bytes).
std::pair<uintptr_t, uintptr_t> pages_of(const void* p, size_t bytes) {
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto a = reinterpret_cast<uintptr_t>(p);
  return {a / page * page, (a + bytes + page - 1) / page * page};
}

const UserBuffer* lookup(const CollectiveContext& ctx, uint64_t handle) {
  auto it = ctx.buffers.find(handle);
  return it == ctx.buffers.end() ? nullptr : &it->second;
}
}  // namespace

void cma_read(int pid, uint64_t address, void* dst, size_t bytes, int peer) {
  auto* d = static_cast<char*>(dst);
  while (bytes) {
    iovec local{d, bytes};
    iovec remote{reinterpret_cast<void*>(address), bytes};
    const ssize_t got = process_vm_readv(pid, &local, 1, &remote, 1, 0);
    if (got <= 0) {
      if (got < 0 && errno == EINTR) continue;
      throw PeerFailure("reading " + std::to_string(bytes) + " bytes of rank " + std::to_string(peer) +
                        "'s buffer (process_vm_readv) failed: " + (got < 0 ? std::strerror(errno) : "nothing read") +
                        "; the rank may have died");
    }
    d += got;
    address += static_cast<uint64_t>(got);
    bytes -= static_cast<size_t>(got);
  }
}

uint64_t register_buffer(Communicator& comm, void* ptr, size_t bytes, double timeout_s) {
  MSCOMM_CHECK_ARG(ptr && bytes, "register: the buffer is empty; register a buffer of at least one byte");
  CollectiveContext& ctx = comm.collectives();
  ctx.connect(comm);
  const auto [lo, hi] = pages_of(ptr, bytes);
  for (const auto& [handle, b] : ctx.buffers) {
    const auto [blo, bhi] = pages_of(b.ptr, b.bytes);
    MSCOMM_CHECK_ARG(hi <= blo || bhi <= lo, "register: the buffer shares memory pages with registered buffer #" +
                                                 std::to_string(handle) + "; allocate buffers to register with "
                                                 "mscomm.empty() (pages of their own), or register one buffer that "
                                                 "spans both and use slices of it");
  }
  const double timeout = timeout_s > 0 ? timeout_s : comm.timeout();
  UserBuffer b;
  b.ptr = static_cast<const char*>(ptr);
  b.bytes = bytes;
  b.peer_ptr.assign(comm.size(), nullptr);
  b.peer_bytes.assign(comm.size(), 0);
  const bool map = comm.num_hosts() == 1;  // the direct path needs every rank on this host
  Extent mine{reinterpret_cast<uintptr_t>(ptr) - lo, bytes};
  auto extents = comm.bootstrap().allgather(std::string(reinterpret_cast<const char*>(&mine), sizeof(mine)),
                                            "register", timeout);
  if (map) {
    b.own = comm.adopt_memory(ptr, bytes);
    b.peers = comm.exchange_memory(b.own);
    for (int r = 0; r < comm.size(); ++r) {
      Extent e;
      if (extents[r].size() != sizeof(e)) throw InternalError("register: malformed extent from rank " + std::to_string(r));
      std::memcpy(&e, extents[r].data(), sizeof(e));
      if (r == comm.rank()) {
        b.peer_ptr[r] = b.ptr;
      } else {
        if (e.offset + e.bytes > b.peers[r].size()) throw InternalError("register: rank " + std::to_string(r) + "'s extent exceeds its segment");
        b.peer_ptr[r] = static_cast<const char*>(b.peers[r].data()) + e.offset;
      }
      b.peer_bytes[r] = e.bytes;
    }
  }
  const uint64_t handle = ctx.next_buffer++;
  ctx.buffers.emplace(handle, std::move(b));
  return handle;
}

void deregister_buffer(Communicator& comm, uint64_t handle) {
  CollectiveContext& ctx = comm.collectives();
  MSCOMM_CHECK_ARG(ctx.buffers.count(handle), "deregister: no registered buffer #" + std::to_string(handle) +
                                                  " (already deregistered, or from another communicator)");
  ctx.buffers.erase(handle);  // gives the pages back (private again) and drops the peers' mappings
}

bool single_copy_reads(Communicator& comm) {
  CollectiveContext& ctx = comm.collectives();
  ctx.connect(comm);
  return ctx.cma;
}

BufferRef find_registered(const CollectiveContext& ctx, const void* ptr, size_t bytes) {
  auto p = static_cast<const char*>(ptr);
  for (const auto& [handle, b] : ctx.buffers)
    if (p >= b.ptr && p + bytes <= b.ptr + b.bytes) return {handle, static_cast<uint64_t>(p - b.ptr)};
  return {};
}

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

uint8_t pick_moving(Communicator& comm, const char* collective, const std::string& requested, size_t message_bytes,
                    DirectReads reads, SingleCopyUse use, uint8_t staged, uint8_t direct, const char* network_name,
                    uint8_t network) {
  const bool local = comm.num_hosts() == 1;
  const bool direct_ok = reads != DirectReads::None;
  const uint8_t automatic = !local ? network : direct_automatic(comm, reads, message_bytes, use) ? direct : staged;
  const char* not_local = "needs every rank on one host (MSCOMM_FORCE_TCP or several hosts rule it out)";
  return pick_algorithm(comm, collective, requested, automatic,
                        {{"staged", staged, local ? nullptr : not_local},
                         {"direct", direct, !local ? not_local : direct_ok ? nullptr : "needs single-copy reads between the ranks (MSCOMM_CMA) or registered buffers"},
                         {network_name, network, nullptr}});
}

void Call::direct_begin(const void* in, size_t in_bytes, const void* out, size_t out_bytes) {
  // Registered: (handle, offset in it); otherwise (0, address), read with process_vm_readv.
  const BufferRef in_ref = in ? find_registered(ctx, in, in_bytes) : BufferRef{};
  const BufferRef out_ref = out ? find_registered(ctx, out, out_bytes) : BufferRef{};
  desc.pad[0] = in_ref.handle;
  desc.pad[1] = in_ref.handle ? in_ref.offset : reinterpret_cast<uintptr_t>(in);
  desc.pad[2] = out_ref.handle;
  desc.pad[3] = out_ref.handle ? out_ref.offset : reinterpret_cast<uintptr_t>(out);
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
  const uint64_t handle = d.pad[2 * which], base = d.pad[2 * which + 1];
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

void Call::read_peer(int peer, int which, size_t offset, size_t bytes, void* dst) const {
  const char* p = peer_view(peer, which, offset, bytes, static_cast<char*>(dst));
  if (p != dst) copy_out(dst, p, bytes);
}

void Call::copy_out(void* dst, const void* src, size_t bytes) const {
  if (stream) stream_copy(dst, src, bytes);
  else std::memcpy(dst, src, bytes);
}

}  // namespace mscomm
