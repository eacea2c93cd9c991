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

}  // namespace mscomm
