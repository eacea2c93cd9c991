// Health: what every blocking loop of a communicator watches besides its own condition. It
// turns comm.abort(), a failure reported by any rank (through the bootstrap) and a broken
// transport into an exception in every waiter, and it owns the one spin-then-yield wait loop.
#pragma once
#include <sched.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "mscomm/errors.hpp"

namespace mscomm {

class Bootstrap;

class Health {
 public:
  Health(Bootstrap* bootstrap, int rank, int spin);

  // Marks the communicator failed; every current and later wait raises `kind` with `message`.
  void fail(ErrorKind kind, const std::string& message);
  bool ok() const {
    return !failed_.load(std::memory_order_relaxed) && !peer_failed_->load(std::memory_order_relaxed);
  }
  void check() const;  // throws the recorded failure, if any
  // True once some rank reported why it failed (not merely: the link to rank 0 broke).
  bool peer_reported_failure() const;
  int rank() const { return rank_; }
  void set_spin(int spin) { spin_ = spin; }

  // Waits until ready() holds: spins `spin` times, then yields the core, then sleeps in short
  // steps. Throws TimeoutError naming describe() after timeout_s, or the failure that ended it.
  // `peer`: the rank whose action would make ready() true; when it announces that it is closing
  // its communicator, the wait fails (PeerFailure: that rank has left) instead of timing out.
  template <class Ready>
  void wait(Ready&& ready, double timeout_s, const std::function<std::string()>& describe, int peer = -1) const {
    for (int i = 0; i < spin_; ++i) {
      if (ready()) return;
#if defined(__x86_64__)
      __builtin_ia32_pause();
#endif
    }
    auto start = std::chrono::steady_clock::now();
    double left_seen = -1;
    for (uint64_t iter = 0;; ++iter) {
      if (ready()) return;
      if (!ok()) {
        // Data a peer sent just before it failed may still be on its way through a receive
        // thread: give it a moment, and finish if it lands.
        auto failed_at = std::chrono::steady_clock::now();
        do {
          if (ready()) return;
          std::this_thread::sleep_for(std::chrono::microseconds(200));
        } while (std::chrono::steady_clock::now() - failed_at < std::chrono::duration<double>(kGraceSeconds));
        if (ready()) return;
        check();
      }
      if ((iter & 63) == 0) {
        double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (waited > timeout_s) throw_timeout(describe(), waited);
        if (peer >= 0 && left_count_->load(std::memory_order_relaxed) && peer_left(peer)) {
          if (left_seen < 0) left_seen = waited;
          if (waited - left_seen > kLeftGraceSeconds) throw_left(peer, describe());
        }
        if (waited > kYieldSeconds) {
          std::this_thread::sleep_for(std::chrono::microseconds(waited > 0.1 ? 500 : 50));
          continue;
        }
      }
      sched_yield();
    }
  }

 private:
  static constexpr double kYieldSeconds = 0.002, kGraceSeconds = 0.2, kLeftGraceSeconds = 0.5;
  [[noreturn]] void throw_timeout(const std::string& what, double waited) const;
  bool peer_left(int peer) const;
  [[noreturn]] void throw_left(int peer, const std::string& what) const;

  const std::atomic<int>* peer_failed_;
  const std::atomic<int>* left_count_;
  Bootstrap* bootstrap_;
  int rank_, spin_;
  std::atomic<int> failed_{0};
  mutable std::mutex mu_;
  ErrorKind kind_ = ErrorKind::Internal;
  bool reported_first_ = false;
  std::string message_;
};

}  // namespace mscomm
