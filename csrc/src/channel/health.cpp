#include "mscomm/health.hpp"

#include "mscomm/bootstrap.hpp"

namespace mscomm {

Health::Health(Bootstrap* bootstrap, int rank, int spin)
    : peer_failed_(&bootstrap->failure_flag()), bootstrap_(bootstrap), rank_(rank), spin_(spin) {}

void Health::fail(ErrorKind kind, const std::string& message) {
  std::lock_guard<std::mutex> lock(mu_);
  if (failed_.load()) return;
  kind_ = kind;
  message_ = message;
  failed_.store(1, std::memory_order_release);
}

void Health::check() const {
  bootstrap_->check();  // a failure some rank reported names the cause: prefer it
  if (failed_.load(std::memory_order_acquire)) {
    std::lock_guard<std::mutex> lock(mu_);
    throw_error(kind_, message_);
  }
}

void Health::throw_timeout(const std::string& what, double waited) const {
  throw TimeoutError(what + " timed out on rank " + std::to_string(rank_) + " after " + std::to_string(waited) +
                     " s. Check that every rank calls the same collectives in the same order, or raise the timeout.");
}

}  // namespace mscomm
