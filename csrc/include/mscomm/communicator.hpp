// Communicator: the ranks of one job and everything that connects them.
//
// Construction is collective: every rank joins the bootstrap, learns which ranks share its
// host, maps same-host peers' control segments and opens authenticated TCP connections to the
// others. From then on it hands out registered memory, connections, semaphores and channels,
// and owns the scratch space the built-in collectives reuse on every call.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "mscomm/bootstrap.hpp"
#include "mscomm/channel.hpp"
#include "mscomm/connection.hpp"
#include "mscomm/health.hpp"
#include "mscomm/registered_memory.hpp"
#include "mscomm/semaphore.hpp"

namespace mscomm {

class TcpTransport;
struct CollectiveContext;

class Communicator {
 public:
  // timeout_s < 0 takes MSCOMM_TIMEOUT; bootstrap waits up to MSCOMM_BOOTSTRAP_TIMEOUT.
  Communicator(int rank, int size, const std::string& unique_id, double timeout_s = -1);
  ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  double timeout() const { return timeout_s_; }
  void set_timeout(double seconds);
  const std::string& host_id() const { return host_ids_[rank_]; }
  const std::string& host_id_of(int rank) const { return host_ids_.at(rank); }
  bool same_host(int peer) const { return host_ids_[peer] == host_ids_[rank_]; }
  // Ranks on this rank's host, in rank order (this rank included).
  const std::vector<int>& local_ranks() const { return local_ranks_; }
  // More ranks on this host than it has CPUs (the host's CPU count, not this process's affinity
  // mask, so every rank of a host agrees): waiters yield at once, and the collectives' automatic
  // choice avoids single-copy reads where staging measured faster.
  bool oversubscribed() const { return oversubscribed_; }
  int num_hosts() const { return num_hosts_; }
  Transport transport_to(int peer) const;

  Bootstrap& bootstrap() { return *bootstrap_; }
  Health& health() { return *health_; }

  // A new buffer of `bytes` bytes that peers can reach (local to this rank until exchanged).
  RegisteredMemory register_memory(size_t bytes);
  // Moves a user's buffer into shared memory in place (see RegisteredMemory::adopt); reachable
  // by same-host peers only (not registered with the TCP transport).
  RegisteredMemory adopt_memory(void* ptr, size_t bytes);
  // Collective: every rank passes its buffer and gets every rank's (same-host ones mapped).
  std::vector<RegisteredMemory> exchange_memory(const RegisteredMemory& mine);

  std::shared_ptr<Connection> connection(int peer);
  // Pairwise: this rank and `peer` must create their semaphores toward each other in the same order.
  Semaphore make_semaphore(int peer);
  MemoryChannel memory_channel(int peer, const RegisteredMemory& local, const RegisteredMemory& remote);
  PortChannel port_channel(int peer, const RegisteredMemory& local, const RegisteredMemory& remote);
  // MemoryChannel for a same-host peer, PortChannel otherwise.
  std::shared_ptr<Channel> channel(int peer, const RegisteredMemory& local, const RegisteredMemory& remote);

  // Unblocks every waiter of this communicator with an Aborted error; callable from any thread.
  void abort(const std::string& reason);
  // Fails this communicator here and on every other rank (used when a collective finds a
  // disagreement), so no rank is left waiting.
  [[noreturn]] void fail_everywhere(ErrorKind kind, const std::string& message);
  // Collective: waits (bounded) for the other ranks, then releases all resources.
  void close();
  bool closed() const { return closed_; }

  // Built-in collectives' state, created on first use.
  CollectiveContext& collectives();
  uint64_t next_call() { return ++calls_; }

  static constexpr uint32_t kSlotsPerPeer = 64;

 private:
  std::atomic<uint64_t>* inbound(int peer, uint32_t slot) const;
  void check_peer(int peer, const char* what) const;

  int rank_, size_;
  double timeout_s_;
  std::string name_prefix_;
  std::unique_ptr<Bootstrap> bootstrap_;
  std::shared_ptr<Health> health_;
  std::vector<std::string> host_ids_;
  std::vector<int> local_ranks_;
  bool oversubscribed_ = false;
  int num_hosts_ = 1;
  RegisteredMemory control_;                 // this rank's inbound semaphore counters
  std::vector<RegisteredMemory> peer_control_;
  std::vector<std::shared_ptr<Connection>> connections_;
  std::shared_ptr<TcpTransport> tcp_;
  std::vector<uint32_t> next_slot_;
  uint32_t next_memory_id_ = 1;
  std::mutex mu_;
  std::unique_ptr<CollectiveContext> collectives_;
  uint64_t calls_ = 0;
  bool closed_ = false;
};

}  // namespace mscomm
