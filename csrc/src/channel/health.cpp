#include "mscomm/health.hpp"

#include "mscomm/bootstrap.hpp"

namespace mscomm {

Health::Health(Bootstrap* bootstrap, int rank, int spin)
    : peer_failed_(&bootstrap->failure_flag()), left_count_(&bootstrap->left_count()), bootstrap_(bootstrap),
      rank_(rank), spin_(spin) {}

bool Health::peer_left(int peer) const { return bootstrap_->has_left(peer); }

void Health::throw_left(int peer, const std::string& what) const {
  throw PeerFailure("rank " + std::to_string(peer) + " has left: it closed its communicator (or its process exited) "
                    "while rank " + std::to_string(rank_) + " still waits for it in " + what +
                    "; every rank must call the same collectives before it closes or exits");
}

void Health::fail(ErrorKind kind, const std::string& message) {
  std::lock_guard<std::mutex> lock(mu_);
  if (failed_.load()) return;
  kind_ = kind;
  message_ = message;
  reported_first_ = peer_reported_failure();
  failed_.store(1, std::memory_order_release);
}

bool Health::peer_reported_failure() const {
  return peer_failed_->load(std::memory_order_acquire) == Bootstrap::kCauseKnown;
}

void Health::check() const {
  // Which error to raise: the first known cause. A failure some rank reported before this rank's
  // transports saw anything comes first; then what the transports saw; a broken link to rank 0
  // alone says the least.
  if (failed_.load(std::memory_order_acquire)) {
    std::lock_guard<std::mutex> lock(mu_);
    if (reported_first_) bootstrap_->check();
    throw_error(kind_, message_);
  }
  bootstrap_->check();
}

void Health::throw_timeout(const std::string& what, double waited) const {
  throw TimeoutError(what + " timed out on rank " + std::to_string(rank_) + " after " + std::to_string(waited) +
                     " s. Check that every rank calls the same collectives in the same order, or raise the timeout.");
}

}  // namespace mscomm
