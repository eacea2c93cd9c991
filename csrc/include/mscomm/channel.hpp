// Channels: put/signal/wait between this rank and one peer over registered memory.
//
// A Channel pairs a Connection with a local and a remote RegisteredMemory and a Semaphore.
// MemoryChannel (same host) adds get() and direct pointers into the peer's memory;
// PortChannel (TCP) moves data through the communicator's proxy thread and adds flush().
// Algorithms written against Channel run over either.
#pragma once
#include <memory>

#include "mscomm/connection.hpp"
#include "mscomm/registered_memory.hpp"
#include "mscomm/semaphore.hpp"

namespace mscomm {

class Channel {
 public:
  Channel() = default;
  Channel(std::shared_ptr<Connection> conn, RegisteredMemory local, RegisteredMemory remote, Semaphore sem);
  virtual ~Channel() = default;

  // Copies local[src_offset, +bytes) to remote[dst_offset, +bytes).
  void put(uint64_t dst_offset, uint64_t src_offset, uint64_t bytes);
  // Same, from any local pointer (the collectives' user buffers).
  void put_from(uint64_t dst_offset, const void* src, uint64_t bytes);
  void signal() { sem_.signal(); }
  void wait(double timeout_s) { sem_.wait(timeout_s); }
  bool poll() { return sem_.poll(); }
  // Every earlier put and signal has landed at the peer.
  void flush(double timeout_s) { conn_->flush(timeout_s); }
  // Earlier puts no longer read their sources (cheap; no round trip).
  void wait_sent(double timeout_s) { conn_->wait_sent(timeout_s); }

  int peer() const { return conn_->remote_rank(); }
  Transport transport() const { return conn_->transport(); }
  const RegisteredMemory& local() const { return local_; }
  const RegisteredMemory& remote() const { return remote_; }

 protected:
  std::shared_ptr<Connection> conn_;
  RegisteredMemory local_, remote_;
  Semaphore sem_;
};

class MemoryChannel : public Channel {
 public:
  using Channel::Channel;
  // Copies remote[src_offset, +bytes) to local[dst_offset, +bytes).
  void get(uint64_t dst_offset, uint64_t src_offset, uint64_t bytes);
  // The peer's memory, mapped here.
  void* remote_ptr() const { return remote_.data(); }
};

class PortChannel : public Channel {
 public:
  using Channel::Channel;
};

}  // namespace mscomm
