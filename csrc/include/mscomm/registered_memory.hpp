// RegisteredMemory: a buffer that peers can reach.
//
// On the host every registered buffer is a POSIX shared-memory segment, created pre-faulted by
// its owner. Same-host peers map it (and then the owner unlinks the name, so a killed job leaves
// nothing in /dev/shm); peers on other hosts (or with MSCOMM_FORCE_TCP) only learn its id and size
// and reach it through the owner's TCP transport, which checks every write against those bounds.
// The serialized form carries ids and sizes, never pointers a peer would trust.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace mscomm {

class RegisteredMemory {
 public:
  RegisteredMemory() = default;

  // Creates and maps a new segment of `bytes` bytes (pre-faulted, zero-filled).
  static RegisteredMemory create(int rank, uint32_t id, size_t bytes, const std::string& name_prefix);
  // Moves the pages holding [ptr, ptr + bytes) (rounded out to whole pages) into a new segment,
  // in place: the buffer keeps its address and contents, and same-host peers can now map it.
  // data() is the first page; the buffer starts at data() + (ptr % page size). When the last
  // owner lets go, the pages become private memory again (contents kept), provided they are
  // still mapped from this segment (the buffer's owner may have freed them meanwhile).
  static RegisteredMemory adopt(int rank, uint32_t id, void* ptr, size_t bytes, const std::string& name_prefix);
  // Rebuilds a peer's memory from serialize(); maps it when `map` is set (same host).
  static RegisteredMemory deserialize(const std::string& blob, bool map);

  std::string serialize() const;
  void unlink();  // removes the name (the mapping stays valid)

  void* data() const;       // nullptr for memory of a peer that is not mapped here
  size_t size() const;
  uint32_t id() const;
  int rank() const;         // the owner
  bool valid() const { return impl_ != nullptr; }
  const std::string& name() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace mscomm
