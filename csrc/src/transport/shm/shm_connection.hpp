// Shared-memory connection: the peer's memory is mapped here, so a write is a memcpy and a
// signal is an atomic add on the peer's inbound counter in its control segment.
#pragma once
#include <atomic>
#include <cstring>

#include "mscomm/connection.hpp"

namespace mscomm {

class ShmConnection : public Connection {
 public:
  // `inbound_at_peer(slot)` is our counter in the peer's mapped control segment.
  ShmConnection(int peer, std::atomic<uint64_t>* peer_counters) : peer_(peer), counters_(peer_counters) {}

  Transport transport() const override { return Transport::SharedMemory; }
  int remote_rank() const override { return peer_; }
  void write(const RegisteredMemory& dst, uint64_t dst_offset, const void* src, uint64_t bytes) override {
    std::memcpy(static_cast<char*>(dst.data()) + dst_offset, src, bytes);
  }
  void signal(uint32_t slot) override { counters_[slot * kStride].fetch_add(1, std::memory_order_release); }
  void flush(double) override { std::atomic_thread_fence(std::memory_order_seq_cst); }
  void wait_sent(double) override {}

  static constexpr size_t kStride = 8;  // one counter per 64-byte cache line

 private:
  int peer_;
  std::atomic<uint64_t>* counters_;
};

}  // namespace mscomm
