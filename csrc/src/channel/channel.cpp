#include "mscomm/channel.hpp"

#include <cstring>

#include "mscomm/errors.hpp"

namespace mscomm {

const char* transport_name(Transport t) { return t == Transport::SharedMemory ? "shm" : "tcp"; }

Channel::Channel(std::shared_ptr<Connection> conn, RegisteredMemory local, RegisteredMemory remote, Semaphore sem)
    : conn_(std::move(conn)), local_(std::move(local)), remote_(std::move(remote)), sem_(std::move(sem)) {}

namespace {
void check_range(const char* what, const RegisteredMemory& m, uint64_t offset, uint64_t bytes) {
  if (offset > m.size() || bytes > m.size() - offset)
    throw InvalidArgument(std::string(what) + ": range [" + std::to_string(offset) + ", +" + std::to_string(bytes) +
                          ") is outside rank " + std::to_string(m.rank()) + "'s registered memory of " +
                          std::to_string(m.size()) + " bytes");
}
}  // namespace

void Channel::put(uint64_t dst_offset, uint64_t src_offset, uint64_t bytes) {
  check_range("put source", local_, src_offset, bytes);
  put_from(dst_offset, static_cast<char*>(local_.data()) + src_offset, bytes);
}

void Channel::put_from(uint64_t dst_offset, const void* src, uint64_t bytes) {
  check_range("put destination", remote_, dst_offset, bytes);
  conn_->write(remote_, dst_offset, src, bytes);
}

void MemoryChannel::get(uint64_t dst_offset, uint64_t src_offset, uint64_t bytes) {
  check_range("get source", remote_, src_offset, bytes);
  check_range("get destination", local_, dst_offset, bytes);
  if (!remote_.data()) throw InvalidArgument("get: rank " + std::to_string(remote_.rank()) + "'s memory is not mapped here");
  std::memcpy(static_cast<char*>(local_.data()) + dst_offset, static_cast<const char*>(remote_.data()) + src_offset, bytes);
}

}  // namespace mscomm
