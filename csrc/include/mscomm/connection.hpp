// Connection: how this rank reaches one peer. Transports (shared memory, TCP, later CUDA IPC)
// stay behind this interface; channels and algorithms never know which one they got.
#pragma once
#include <cstdint>

#include "mscomm/registered_memory.hpp"

namespace mscomm {

enum class Transport : uint8_t { SharedMemory = 0, Tcp = 1 };
const char* transport_name(Transport t);

class Connection {
 public:
  virtual ~Connection() = default;
  virtual Transport transport() const = 0;
  virtual int remote_rank() const = 0;

  // Copies `bytes` from local memory `src` into the peer's registered memory `dst` at
  // `dst_offset`. Over TCP the copy is queued to the proxy: `src` must stay unchanged until
  // wait_sent() or flush() returns. Out-of-bounds writes throw InvalidArgument here and are
  // refused again by the receiver.
  virtual void write(const RegisteredMemory& dst, uint64_t dst_offset, const void* src, uint64_t bytes) = 0;
  // Adds one to the peer's inbound semaphore `slot`, after every earlier write has landed.
  virtual void signal(uint32_t slot) = 0;
  // Returns when every earlier write and signal has landed at the peer (TCP: acknowledged).
  virtual void flush(double timeout_s) = 0;
  // Returns when earlier writes no longer read their source buffers.
  virtual void wait_sent(double timeout_s) = 0;
};

}  // namespace mscomm
