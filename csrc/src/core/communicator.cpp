#include "mscomm/communicator.hpp"

#include <unistd.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <set>
#include <thread>

#include "../collectives/context.hpp"
#include "../transport/shm/shm_connection.hpp"
#include "../transport/tcp/tcp_transport.hpp"
#include "mscomm/env.hpp"

namespace mscomm {

namespace {

std::string read_first_line(const char* path) {
  std::ifstream f(path);
  std::string line;
  std::getline(f, line);
  return line;
}

// Ranks with equal host ids share memory: same machine, same boot, same network namespace.
std::string detect_host_id() {
  std::string forced = env_string("MSCOMM_HOST_ID");
  if (!forced.empty()) return forced;
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  char ns[128] = {0};
  ssize_t n = readlink("/proc/self/ns/net", ns, sizeof(ns) - 1);
  return std::string(host) + "/" + read_first_line("/proc/sys/kernel/random/boot_id") + "/" +
         (n > 0 ? std::string(ns, static_cast<size_t>(n)) : "");
}

std::string shm_prefix(const std::string& secret) {
  std::string tag = env_string("MSCOMM_JOB_TAG");
  if (tag.empty()) tag = "x";
  char hash[17];
  snprintf(hash, sizeof(hash), "%016zx", std::hash<std::string>{}(secret));
  return "/mscomm-" + tag + "-" + hash;
}

// Length-prefixed fields, so peer info survives any bytes in host names.
void put_field(std::string& out, const std::string& field) {
  uint32_t n = static_cast<uint32_t>(field.size());
  out.append(reinterpret_cast<const char*>(&n), 4);
  out += field;
}
std::string take_field(const std::string& in, size_t& pos) {
  uint32_t n;
  if (pos + 4 > in.size()) throw InternalError("truncated peer info");
  std::memcpy(&n, in.data() + pos, 4);
  pos += 4;
  if (n > in.size() - pos) throw InternalError("truncated peer info");
  std::string out = in.substr(pos, n);
  pos += n;
  return out;
}

int spin_count(bool oversubscribed) {
  std::string s = env_string("MSCOMM_SPIN");
  if (s != "auto") return static_cast<int>(env_int("MSCOMM_SPIN"));
  // More ranks than cores: a spinning waiter steals the core its peer needs, so yield at once.
  return oversubscribed ? 16 : 20000;
}

}  // namespace

Communicator::Communicator(int rank, int size, const std::string& unique_id, double timeout_s)
    : rank_(rank), size_(size), timeout_s_(timeout_s < 0 ? env_double("MSCOMM_TIMEOUT") : timeout_s) {
  MSCOMM_CHECK_ARG(timeout_s_ > 0, "timeout must be positive, got " + std::to_string(timeout_s_));
  check_environment();  // a bad MSCOMM_ value fails here, on every rank, not at first use
  UniqueId id = UniqueId::parse(unique_id);
  const double boot_timeout = env_double("MSCOMM_BOOTSTRAP_TIMEOUT");
  bootstrap_ = std::make_unique<Bootstrap>(rank, size, id, boot_timeout);
  name_prefix_ = shm_prefix(id.secret);
  health_ = std::make_shared<Health>(bootstrap_.get(), rank, 20000);
  tcp_ = std::make_shared<TcpTransport>(rank, size, id.secret, health_, nullptr, kSlotsPerPeer,
                                        ShmConnection::kStride);
  std::string listen_host = env_string("MSCOMM_SOCKET_ADDR");
  std::string tcp_address = tcp_->listen(listen_host.empty() ? bootstrap_->local_host() : listen_host);
  // Waiting for the other ranks to arrive can take long (they may still be starting, or never
  // come); no segment exists during that wait, so a rank killed in it leaves nothing in /dev/shm.
  bootstrap_->barrier("communicator setup (all ranks joined)", boot_timeout);

  const size_t control_bytes = static_cast<size_t>(size) * kSlotsPerPeer * ShmConnection::kStride * sizeof(uint64_t);
  control_ = RegisteredMemory::create(rank, 0, control_bytes, name_prefix_);
  tcp_->set_counters(inbound(0, 0));

  std::string my_host = detect_host_id();
  if (env_bool("MSCOMM_FORCE_TCP")) my_host += "#rank" + std::to_string(rank);
  std::string info;
  put_field(info, my_host);
  put_field(info, tcp_address);
  put_field(info, control_.serialize());
  std::vector<std::string> infos = bootstrap_->allgather(info, "communicator setup (peer info)", boot_timeout);

  std::vector<std::string> addresses(size), controls(size);
  host_ids_.resize(size);
  for (int r = 0; r < size; ++r) {
    size_t pos = 0;
    host_ids_[r] = take_field(infos[r], pos);
    addresses[r] = take_field(infos[r], pos);
    controls[r] = take_field(infos[r], pos);
  }
  std::set<std::string> hosts(host_ids_.begin(), host_ids_.end());
  num_hosts_ = static_cast<int>(hosts.size());
  std::vector<int> remote;
  for (int r = 0; r < size; ++r) (same_host(r) ? local_ranks_ : remote).push_back(r);
  oversubscribed_ = local_ranks_.size() > std::max(1u, std::thread::hardware_concurrency());
  health_->set_spin(spin_count(oversubscribed_));

  peer_control_.resize(size);
  connections_.resize(size);
  next_slot_.assign(size, 0);
  for (int r : local_ranks_) {
    if (r == rank) continue;
    peer_control_[r] = RegisteredMemory::deserialize(controls[r], true);
    auto* counters = static_cast<std::atomic<uint64_t>*>(peer_control_[r].data());
    connections_[r] = std::make_shared<ShmConnection>(r, counters + static_cast<size_t>(rank) * kSlotsPerPeer * ShmConnection::kStride);
  }
  if (!remote.empty()) {
    tcp_->connect(remote, addresses, boot_timeout);
    for (int r : remote) connections_[r] = tcp_->connection(r);
  }
  bootstrap_->barrier("communicator setup (shared memory mapped)", boot_timeout);
  control_.unlink();
}

Communicator::~Communicator() {
  try {
    close();
  } catch (...) {
  }
}

void Communicator::set_timeout(double seconds) {
  MSCOMM_CHECK_ARG(seconds > 0, "timeout must be positive, got " + std::to_string(seconds));
  timeout_s_ = seconds;
}

Transport Communicator::transport_to(int peer) const {
  check_peer(peer, "transport_to");
  return same_host(peer) ? Transport::SharedMemory : Transport::Tcp;
}

void Communicator::check_peer(int peer, const char* what) const {
  if (peer < 0 || peer >= size_ || peer == rank_)
    throw InvalidArgument(std::string(what) + ": peer " + std::to_string(peer) + " is not another rank of this " +
                          std::to_string(size_) + "-rank communicator (this is rank " + std::to_string(rank_) + ")");
}

std::atomic<uint64_t>* Communicator::inbound(int peer, uint32_t slot) const {
  auto* base = static_cast<std::atomic<uint64_t>*>(control_.data());
  return base + (static_cast<size_t>(peer) * kSlotsPerPeer + slot) * ShmConnection::kStride;
}

RegisteredMemory Communicator::register_memory(size_t bytes) {
  MSCOMM_CHECK_ARG(!closed_, "register_memory: the communicator is closed");
  std::lock_guard<std::mutex> lock(mu_);
  RegisteredMemory m = RegisteredMemory::create(rank_, next_memory_id_++, bytes, name_prefix_);
  tcp_->register_memory(m);
  return m;
}

RegisteredMemory Communicator::adopt_memory(void* ptr, size_t bytes) {
  MSCOMM_CHECK_ARG(!closed_, "register: the communicator is closed");
  std::lock_guard<std::mutex> lock(mu_);
  return RegisteredMemory::adopt(rank_, next_memory_id_++, ptr, bytes, name_prefix_);
}

std::vector<RegisteredMemory> Communicator::exchange_memory(const RegisteredMemory& mine) {
  MSCOMM_CHECK_ARG(mine.valid() && mine.rank() == rank_, "exchange_memory: pass memory registered on this rank");
  health_->check();
  auto& name_owner = const_cast<RegisteredMemory&>(mine);
  try {
    auto blobs = bootstrap_->allgather(mine.serialize(), "exchange_memory", timeout_s_);
    std::vector<RegisteredMemory> all(size_);
    for (int r = 0; r < size_; ++r)
      all[r] = r == rank_ ? mine : RegisteredMemory::deserialize(blobs[r], same_host(r));
    bootstrap_->barrier("exchange_memory (mapped)", timeout_s_);
    name_owner.unlink();
    return all;
  } catch (...) {
    name_owner.unlink();  // nobody will map it now: leave nothing in /dev/shm
    throw;
  }
}

std::shared_ptr<Connection> Communicator::connection(int peer) {
  check_peer(peer, "connection");
  MSCOMM_CHECK_ARG(!closed_, "connection: the communicator is closed");
  return connections_[peer];
}

Semaphore Communicator::make_semaphore(int peer) {
  check_peer(peer, "make_semaphore");
  std::lock_guard<std::mutex> lock(mu_);
  uint32_t slot = next_slot_[peer];
  if (slot >= kSlotsPerPeer)
    throw InvalidArgument("make_semaphore: rank " + std::to_string(rank_) + " already has " +
                          std::to_string(kSlotsPerPeer) + " semaphores with rank " + std::to_string(peer));
  ++next_slot_[peer];
  return Semaphore(connections_[peer], slot, inbound(peer, slot), health_);
}

MemoryChannel Communicator::memory_channel(int peer, const RegisteredMemory& local, const RegisteredMemory& remote) {
  check_peer(peer, "memory_channel");
  if (!same_host(peer) || !remote.data())
    throw InvalidArgument("memory_channel: rank " + std::to_string(peer) + " is not on rank " + std::to_string(rank_) +
                          "'s host (or MSCOMM_FORCE_TCP is set); use port_channel");
  return MemoryChannel(connections_[peer], local, remote, make_semaphore(peer));
}

PortChannel Communicator::port_channel(int peer, const RegisteredMemory& local, const RegisteredMemory& remote) {
  check_peer(peer, "port_channel");
  if (same_host(peer))
    throw InvalidArgument("port_channel: rank " + std::to_string(peer) +
                          " shares this host and is reached through shared memory; use memory_channel (or set MSCOMM_FORCE_TCP=1)");
  return PortChannel(connections_[peer], local, remote, make_semaphore(peer));
}

std::shared_ptr<Channel> Communicator::channel(int peer, const RegisteredMemory& local, const RegisteredMemory& remote) {
  if (same_host(peer)) return std::make_shared<MemoryChannel>(memory_channel(peer, local, remote));
  return std::make_shared<PortChannel>(port_channel(peer, local, remote));
}

void Communicator::abort(const std::string& reason) {
  const std::string message = "communicator aborted on rank " + std::to_string(rank_) + ": " + reason;
  health_->fail(ErrorKind::Aborted, message);
  bootstrap_->abort(message);  // also ends waits inside the bootstrap (setup, exchange_memory)
}

void Communicator::fail_everywhere(ErrorKind kind, const std::string& message) {
  bootstrap_->report_failure(kind, message);
  health_->fail(kind, message);
  throw_error(kind, message);
}

void Communicator::close() {
  if (closed_) return;
  closed_ = true;
  const double grace = env_double("MSCOMM_SHUTDOWN_TIMEOUT");
  const bool healthy = health_->ok();
  if (healthy) {
    try {
      // What this rank sent last is written out before the others hear that it is leaving, so
      // a peer that still waits for it after the notice waits in vain, and is told so at once.
      for (int r = 0; r < size_; ++r)
        if (r != rank_ && !same_host(r)) tcp_->wait_sent(r, std::min(grace, 5.0));
    } catch (const Error&) {
    }
    bootstrap_->announce_leaving();
    try {
      bootstrap_->barrier("close", grace);
    } catch (const Error&) {
    }
  }
  collectives_.reset();
  tcp_->stop();
  connections_.clear();
  peer_control_.clear();
  // A failed communicator: the others have been told; rank 0 need not wait long for them to leave.
  bootstrap_->close(healthy && health_->ok() ? grace : std::min(grace, 1.0));
}

CollectiveContext& Communicator::collectives() {
  MSCOMM_CHECK_ARG(!closed_, "the communicator is closed");
  if (!collectives_) collectives_ = std::make_unique<CollectiveContext>(*this);
  return *collectives_;
}

}  // namespace mscomm
