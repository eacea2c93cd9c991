// TCP transport: one authenticated socket per remote peer, a proxy thread that performs queued
// writes and signals, and a receive thread that lands incoming data in registered memory.
//
// Frames on a socket are processed in order, so a write always lands before a later signal is
// counted. Every id, offset and length read off the network is checked against this rank's
// registrations before anything is written; a peer that breaks the protocol is disconnected and
// the communicator fails.
#pragma once
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../../core/socket.hpp"
#include "mscomm/connection.hpp"
#include "mscomm/health.hpp"

namespace mscomm {

class TcpTransport : public std::enable_shared_from_this<TcpTransport> {
 public:
  TcpTransport(int rank, int size, std::string secret, std::shared_ptr<Health> health,
               std::atomic<uint64_t>* counters, uint32_t slots_per_peer, size_t stride);
  ~TcpTransport();

  // Where received signals land (this rank's inbound counters); set before connect().
  void set_counters(std::atomic<uint64_t>* counters) { counters_ = counters; }
  // Opens the listener; returns "host:port" for peers.
  std::string listen(const std::string& host);
  // Connects to every rank in `peers` (ranks whose address is in addresses[rank]).
  void connect(const std::vector<int>& peers, const std::vector<std::string>& addresses, double timeout_s);
  void register_memory(const RegisteredMemory& m);
  std::shared_ptr<Connection> connection(int peer);
  // Stops the threads and closes the sockets; later EOFs from peers are expected.
  void stop();

  // Used by TcpConnection.
  void enqueue(uint16_t type, int peer, uint32_t id, uint64_t offset, const void* src, uint64_t bytes);
  void flush(int peer, double timeout_s);
  void wait_sent(int peer, double timeout_s);

 private:
  struct Request {
    uint16_t type;
    int peer;
    uint32_t id;
    uint64_t offset;
    const void* src;
    uint64_t bytes;
  };
  struct Peer {
    net::Socket sock;
    std::atomic<uint64_t> queued{0}, sent{0}, flushes{0}, acked{0};  // queued/sent: frames but acks
  };
  void proxy_loop();
  void receive_loop();
  void receive_frame(int peer);
  void peer_failed(int peer, const std::string& why);

  int rank_, size_;
  std::string secret_;
  std::shared_ptr<Health> health_;
  std::atomic<uint64_t>* counters_;
  uint32_t slots_per_peer_;
  size_t stride_;
  double timeout_s_ = 300;
  net::Socket listener_;
  std::vector<std::unique_ptr<Peer>> peers_;
  std::mutex mem_mu_;
  std::map<uint32_t, RegisteredMemory> memories_;

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<Request> queue_;
  std::atomic<bool> stop_{false};
  std::thread proxy_, receiver_;
};

}  // namespace mscomm
