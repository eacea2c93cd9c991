// Semaphore: a 64-bit counter that only increases, shared by this rank and one peer.
//
// Each rank owns, in its control segment, one inbound counter per (peer, slot). signal() adds
// one to the peer's inbound counter for us (a store into mapped memory for a same-host peer, a
// SIGNAL frame through the proxy for a TCP peer; either way after all earlier writes on the
// same connection have landed). wait() waits until our inbound counter passes the number of
// signals already consumed, so every signal is consumed exactly once.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>

namespace mscomm {

class Connection;
class Health;

class Semaphore {
 public:
  Semaphore() = default;
  Semaphore(std::shared_ptr<Connection> conn, uint32_t slot, std::atomic<uint64_t>* inbound,
            std::shared_ptr<const Health> health);

  void signal();
  // Consumes one signal; throws TimeoutError after timeout_s (or the communicator's failure).
  void wait(double timeout_s);
  // Consumes one signal if it has arrived; never blocks.
  bool poll();
  // Waits until `total` signals have arrived in all and marks them consumed (no-op when already
  // consumed): for counters that mean "done through step total", where a waiter may skip some.
  void wait_until(uint64_t total, double timeout_s);
  int peer() const;
  uint32_t slot() const { return slot_; }
  uint64_t consumed() const { return expected_; }

 private:
  std::shared_ptr<Connection> conn_;
  uint32_t slot_ = 0;
  std::atomic<uint64_t>* inbound_ = nullptr;
  uint64_t expected_ = 0;
  std::shared_ptr<const Health> health_;
};

}  // namespace mscomm
