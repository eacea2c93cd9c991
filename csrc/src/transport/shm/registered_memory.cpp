#include "mscomm/registered_memory.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "mscomm/errors.hpp"

namespace mscomm {

struct RegisteredMemory::Impl {
  int rank = -1;
  uint32_t id = 0;
  size_t size = 0;
  std::string name;
  void* ptr = nullptr;
  size_t mapped = 0;
  bool linked = false;
  bool adopted = false;  // ptr..ptr+mapped are a user's pages, moved into this segment

  ~Impl() {
    if (adopted) give_back();
    else if (ptr && mapped) munmap(ptr, mapped);
    if (linked) shm_unlink(name.c_str());
  }

  // The segment's pages become private again at the same address, with the same contents.
  void give_back() {
    if (!still_mapped()) return;  // freed by its owner: nothing of ours is left there
    void* t = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (t == MAP_FAILED) return;  // keep the shared pages: they stay correct, only not private
    std::memcpy(t, ptr, mapped);
    if (mremap(t, mapped, mapped, MREMAP_MAYMOVE | MREMAP_FIXED, ptr) == MAP_FAILED) munmap(t, mapped);
  }

  // Whether ptr is still mapped from this segment (/proc/self/maps names the shm file).
  bool still_mapped() const {
    FILE* f = std::fopen("/proc/self/maps", "r");
    if (!f) return false;
    char line[4096];
    bool found = false;
    const auto want = reinterpret_cast<unsigned long>(ptr);
    while (!found && std::fgets(line, sizeof(line), f)) {
      unsigned long lo, hi;
      if (std::sscanf(line, "%lx-%lx", &lo, &hi) == 2 && lo <= want && want < hi)
        found = std::strstr(line, ("/dev/shm" + name + " ").c_str()) || std::strstr(line, ("/dev/shm" + name + "\n").c_str());
    }
    std::fclose(f);
    return found;
  }
};

namespace {
// A zero-byte registration still maps one page so every pointer is valid.
size_t map_size(size_t bytes) { return bytes ? bytes : 1; }

struct Wire {
  int32_t rank;
  uint32_t id;
  uint64_t size;
  uint32_t name_len;
};
}  // namespace

RegisteredMemory RegisteredMemory::create(int rank, uint32_t id, size_t bytes, const std::string& name_prefix) {
  auto impl = std::make_shared<Impl>();
  impl->rank = rank;
  impl->id = id;
  impl->size = bytes;
  impl->name = name_prefix + "-" + std::to_string(rank) + "-" + std::to_string(id);
  int fd = shm_open(impl->name.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) throw_system_error("shm_open(" + impl->name + ")");
  impl->linked = true;
  if (ftruncate(fd, static_cast<off_t>(map_size(bytes))) != 0) {
    ::close(fd);
    throw_system_error("ftruncate of shared memory " + impl->name + " to " + std::to_string(bytes) + " bytes");
  }
  void* p = mmap(nullptr, map_size(bytes), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) throw_system_error("mmap of shared memory " + impl->name);
  impl->ptr = p;
  impl->mapped = map_size(bytes);
  RegisteredMemory m;
  m.impl_ = impl;
  return m;
}

RegisteredMemory RegisteredMemory::adopt(int rank, uint32_t id, void* ptr, size_t bytes, const std::string& name_prefix) {
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t lo = reinterpret_cast<uintptr_t>(ptr) / page * page;
  const uintptr_t hi = (reinterpret_cast<uintptr_t>(ptr) + bytes + page - 1) / page * page;
  RegisteredMemory m = create(rank, id, hi - lo, name_prefix);
  Impl& impl = *m.impl_;
  std::memcpy(impl.ptr, reinterpret_cast<void*>(lo), hi - lo);
  if (mremap(impl.ptr, hi - lo, hi - lo, MREMAP_MAYMOVE | MREMAP_FIXED, reinterpret_cast<void*>(lo)) == MAP_FAILED)
    throw_system_error("mremap of the pages of a " + std::to_string(bytes) + "-byte buffer into shared memory");
  impl.ptr = reinterpret_cast<void*>(lo);
  impl.adopted = true;
  return m;
}

std::string RegisteredMemory::serialize() const {
  Wire w{impl_->rank, impl_->id, impl_->size, static_cast<uint32_t>(impl_->name.size())};
  std::string out(reinterpret_cast<const char*>(&w), sizeof(w));
  return out + impl_->name;
}

RegisteredMemory RegisteredMemory::deserialize(const std::string& blob, bool map) {
  Wire w;
  if (blob.size() < sizeof(w)) throw InternalError("truncated registered-memory handle");
  std::memcpy(&w, blob.data(), sizeof(w));
  if (blob.size() != sizeof(w) + w.name_len || w.name_len > 255)
    throw InternalError("malformed registered-memory handle");
  auto impl = std::make_shared<Impl>();
  impl->rank = w.rank;
  impl->id = w.id;
  impl->size = w.size;
  impl->name = blob.substr(sizeof(w));
  if (map) {
    int fd = shm_open(impl->name.c_str(), O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) throw_system_error("rank " + std::to_string(w.rank) + "'s shared memory " + impl->name + ": shm_open");
    struct stat st;
    if (fstat(fd, &st) != 0 || static_cast<size_t>(st.st_size) < map_size(w.size)) {
      ::close(fd);
      throw InternalError("shared memory " + impl->name + " is smaller than its handle says");
    }
    void* p = mmap(nullptr, map_size(w.size), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    ::close(fd);
    if (p == MAP_FAILED) throw_system_error("mmap of rank " + std::to_string(w.rank) + "'s shared memory");
    impl->ptr = p;
    impl->mapped = map_size(w.size);
  }
  RegisteredMemory m;
  m.impl_ = impl;
  return m;
}

void RegisteredMemory::unlink() {
  if (impl_ && impl_->linked) {
    shm_unlink(impl_->name.c_str());
    impl_->linked = false;
  }
}

void* RegisteredMemory::data() const { return impl_ ? impl_->ptr : nullptr; }
size_t RegisteredMemory::size() const { return impl_ ? impl_->size : 0; }
uint32_t RegisteredMemory::id() const { return impl_ ? impl_->id : 0; }
int RegisteredMemory::rank() const { return impl_ ? impl_->rank : -1; }
const std::string& RegisteredMemory::name() const {
  static const std::string empty;
  return impl_ ? impl_->name : empty;
}

}  // namespace mscomm
