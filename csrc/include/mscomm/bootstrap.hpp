// Bootstrap: the out-of-band TCP rendezvous every communicator starts with.
//
// Rank 0 hosts a small server; every rank (rank 0 included) connects to it and proves it holds the
// job's secret, which travels inside the unique id. The server then relays small messages:
// allgather and barrier over all ranks, and tagged point-to-point send/recv. It also watches its
// connections: a rank whose connection drops without saying goodbye has died, and every other
// rank is told at once, so peers blocked anywhere in mscomm fail fast instead of timing out.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "mscomm/errors.hpp"

namespace mscomm {

namespace net { class Socket; }
class BootstrapRoot;

// Where rank 0 listens and the job's secret, written as mscomm://host:port/<64 hex digits>.
struct UniqueId {
  std::string host;
  int port = 0;
  std::string secret;  // 32 raw bytes

  std::string str() const;
  static UniqueId parse(const std::string& text);
};

// Makes a fresh id with a random secret. The listening socket is bound now (port 0 picks a free
// port) and kept in this process, so rank 0 created here adopts it and no other process can take
// the port in between.
UniqueId create_unique_id(const std::string& host = "127.0.0.1", int port = 0);

class Bootstrap {
 public:
  Bootstrap(int rank, int size, const UniqueId& id, double timeout_s);
  ~Bootstrap();
  Bootstrap(const Bootstrap&) = delete;
  Bootstrap& operator=(const Bootstrap&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  const std::string& secret() const { return secret_; }
  // The address of this rank on the path it uses to reach rank 0 (what peers can connect to).
  const std::string& local_host() const { return local_host_; }

  // Each rank contributes one blob; every rank gets all blobs in rank order. `what` names the
  // operation in errors.
  std::vector<std::string> allgather(const std::string& mine, const std::string& what, double timeout_s);
  void barrier(const std::string& what, double timeout_s);
  void send(int peer, uint64_t tag, const std::string& data);
  std::string recv(int peer, uint64_t tag, double timeout_s);

  // Tells every rank that this one failed; their blocked calls raise an error of the same kind.
  void report_failure(ErrorKind kind, const std::string& message);
  // Ends this rank's current and later waits with Aborted (other ranks are not told).
  void abort(const std::string& message) { record_failure(ErrorKind::Aborted, message, kCauseKnown); }
  // Throws if any rank reported a failure or died, or the connection to rank 0 is gone.
  void check() const;
  // Non-zero once a failure is known; cheap to poll from spin loops. kCauseKnown: a rank reported
  // why it failed (or this rank aborted); kLostRoot: only the connection to rank 0 broke, a
  // symptom whose cause a transport of this rank may know better.
  static constexpr int kCauseKnown = 1, kLostRoot = 2;
  // How long a wait for a rank that announced it is leaving goes on (what it sent last may still
  // be on its way) before it fails.
  static constexpr double kLeftGraceSeconds = 0.5;
  const std::atomic<int>& failure_flag() const { return failed_; }

  // Tells every other rank that this one is closing its communicator: from now on it sends
  // nothing but what is already on its way, so a peer still waiting for it has lost it.
  void announce_leaving();
  // Whether `rank` has announced that it is closing; left_count() is cheap to poll.
  bool has_left(int rank) const { return left_[rank].load(std::memory_order_acquire); }
  const std::atomic<int>& left_count() const { return left_count_; }

  // Says goodbye. Rank 0 then waits (up to timeout_s) for every other rank to leave too.
  void close(double timeout_s);

 private:
  struct Failure {
    ErrorKind kind;
    std::string message;
  };
  void send_frame(uint16_t type, int dst, uint64_t tag, const std::string& payload);
  void reader_loop();
  void record_failure(ErrorKind kind, const std::string& message, int how = kCauseKnown);
  [[noreturn]] void throw_timeout(const std::string& what, uint64_t seq, double waited);

  int rank_, size_;
  std::string secret_;
  std::string local_host_;
  std::unique_ptr<BootstrapRoot> root_;
  std::unique_ptr<net::Socket> sock_;
  std::thread reader_;
  std::atomic<bool> stop_{false};
  bool closed_ = false;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::mutex send_mu_;
  uint64_t next_seq_ = 0;
  std::map<uint64_t, std::vector<std::string>> results_;
  std::map<uint64_t, std::string> status_;
  std::map<std::pair<int, uint64_t>, std::vector<std::string>> mailbox_;
  std::atomic<int> failed_{0};
  Failure failure_{ErrorKind::Internal, ""};
  std::unique_ptr<std::atomic<bool>[]> left_;
  std::atomic<int> left_count_{0};
};

}  // namespace mscomm
