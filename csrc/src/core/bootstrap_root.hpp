// The bootstrap server hosted by rank 0: authenticates ranks, relays allgathers and messages,
// and announces any rank whose connection drops. One thread, one poll loop; connections that
// have not proven the secret may send exactly one fixed-size hello and are dropped after 10 s.
#pragma once
#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "socket.hpp"

namespace mscomm {

class BootstrapRoot {
 public:
  BootstrapRoot(net::Socket listener, int size, std::string secret, size_t max_frame);
  ~BootstrapRoot();
  // Waits until every rank has left (or timeout_s passed), then stops the server.
  void finish(double timeout_s);

 private:
  struct Conn;
  struct Gather {
    std::vector<std::string> blobs;
    std::vector<bool> got;
    int count = 0;
  };
  void loop();
  void accept_new();
  bool read_conn(Conn& c);  // false: drop the connection
  bool handle_frame(Conn& c);
  void on_hello(Conn& c, const std::string& payload);
  void drop(Conn& c, const std::string& why);
  void broadcast_failure(int rank, uint8_t kind, const std::string& message);
  bool send_to(int rank, uint16_t type, int src, uint64_t tag, const std::string& payload);
  bool send_raw(int rank, const std::string& frame);
  bool all_left() const;

  net::Socket listener_;
  int size_;
  std::string secret_;
  size_t max_frame_;
  std::vector<std::unique_ptr<Conn>> pending_;  // not yet authenticated
  std::vector<std::unique_ptr<Conn>> ranks_;    // by rank
  std::vector<uint8_t> state_;                  // wire::RankState per rank
  std::map<uint64_t, Gather> gathers_;
  std::map<int, std::vector<std::string>> undelivered_;  // frames for ranks not joined yet
  std::vector<std::string> failures_;                    // failure frames, replayed to late joiners
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace mscomm
