#include "mscomm/semaphore.hpp"

#include "mscomm/connection.hpp"
#include "mscomm/health.hpp"

namespace mscomm {

Semaphore::Semaphore(std::shared_ptr<Connection> conn, uint32_t slot, std::atomic<uint64_t>* inbound,
                     std::shared_ptr<const Health> health)
    : conn_(std::move(conn)), slot_(slot), inbound_(inbound), health_(std::move(health)) {}

void Semaphore::signal() { conn_->signal(slot_); }

int Semaphore::peer() const { return conn_->remote_rank(); }

bool Semaphore::poll() {
  if (inbound_->load(std::memory_order_acquire) <= expected_) return false;
  ++expected_;
  return true;
}

void Semaphore::wait(double timeout_s) {
  const uint64_t target = expected_ + 1;
  health_->wait([&] { return inbound_->load(std::memory_order_acquire) >= target; }, timeout_s,
                [&] { return "wait for a signal from rank " + std::to_string(peer()) + " (semaphore " +
                             std::to_string(slot_) + ", signal #" + std::to_string(target) + ")"; },
                peer());
  expected_ = target;
}

void Semaphore::wait_until(uint64_t total, double timeout_s) {
  if (total <= expected_) return;
  health_->wait([&] { return inbound_->load(std::memory_order_acquire) >= total; }, timeout_s,
                [&] { return "wait for signal #" + std::to_string(total) + " from rank " + std::to_string(peer()) +
                             " (semaphore " + std::to_string(slot_) + ")"; });
  expected_ = total;
}

}  // namespace mscomm
