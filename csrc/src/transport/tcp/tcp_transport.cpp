#include "tcp_transport.hpp"

#include <poll.h>

#include <algorithm>
#include <cstring>

#include "../../core/bootstrap_wire.hpp"
#include "mscomm/errors.hpp"

namespace mscomm {

namespace {

constexpr uint32_t kDataMagic = 0x5444434d;  // "MCDT"
enum DataFrameType : uint16_t { kPut = 1, kSignal = 2, kFlush = 3, kAck = 4 };

struct DataFrame {
  uint32_t magic;
  uint16_t type;
  uint16_t reserved;
  uint32_t id;  // memory id (kPut) or semaphore slot (kSignal)
  uint32_t reserved2;
  uint64_t offset;  // destination offset (kPut) or flush sequence (kFlush, kAck)
  uint64_t length;  // payload bytes (kPut)
};
static_assert(sizeof(DataFrame) == 32, "data frame header must be 32 bytes");

struct Hello {
  uint32_t magic;
  int32_t rank;
  uint8_t secret[wire::kSecretBytes];
};

class TcpConnection : public Connection {
 public:
  TcpConnection(std::shared_ptr<TcpTransport> t, int peer) : t_(std::move(t)), peer_(peer) {}
  Transport transport() const override { return Transport::Tcp; }
  int remote_rank() const override { return peer_; }
  void write(const RegisteredMemory& dst, uint64_t dst_offset, const void* src, uint64_t bytes) override {
    t_->enqueue(kPut, peer_, dst.id(), dst_offset, src, bytes);
  }
  void signal(uint32_t slot) override { t_->enqueue(kSignal, peer_, slot, 0, nullptr, 0); }
  void flush(double timeout_s) override { t_->flush(peer_, timeout_s); }
  void wait_sent(double timeout_s) override { t_->wait_sent(peer_, timeout_s); }

 private:
  std::shared_ptr<TcpTransport> t_;
  int peer_;
};

}  // namespace

TcpTransport::TcpTransport(int rank, int size, std::string secret, std::shared_ptr<Health> health,
                           std::atomic<uint64_t>* counters, uint32_t slots_per_peer, size_t stride)
    : rank_(rank), size_(size), secret_(std::move(secret)), health_(std::move(health)), counters_(counters),
      slots_per_peer_(slots_per_peer), stride_(stride) {
  for (int r = 0; r < size; ++r) peers_.push_back(std::make_unique<Peer>());
}

TcpTransport::~TcpTransport() { stop(); }

std::string TcpTransport::listen(const std::string& host) {
  listener_ = net::Socket::listen(host, 0);
  return net::Address{host, listener_.local_port()}.str();
}

void TcpTransport::connect(const std::vector<int>& peers, const std::vector<std::string>& addresses, double timeout_s) {
  timeout_s_ = timeout_s;
  net::Deadline deadline(timeout_s);
  auto check = [this] { health_->check(); };
  Hello mine{kDataMagic, rank_, {}};
  std::memcpy(mine.secret, secret_.data(), wire::kSecretBytes);
  int expected_accepts = 0;
  // Lower ranks connect to higher ones; each side authenticates with the job secret.
  for (int p : peers) {
    if (p < rank_) { ++expected_accepts; continue; }
    std::string what = "TCP connect from rank " + std::to_string(rank_) + " to rank " + std::to_string(p);
    peers_[p]->sock = net::Socket::connect(net::parse_address(addresses[p]), deadline, check, what);
    peers_[p]->sock.send_all(&mine, sizeof(mine), deadline, check, what);
  }
  // Accept and authenticate the lower ranks. Every pending connection is watched at once and
  // must say hello within a short time, so silent strangers cannot stall the setup.
  struct Pending {
    net::Socket sock;
    std::string in;
    net::Deadline hello{2.0};
  };
  std::vector<Pending> pending;
  while (expected_accepts > 0) {
    if (deadline.expired()) {
      std::string missing;
      for (int p : peers)
        if (p < rank_ && !peers_[p]->sock.valid()) missing += (missing.empty() ? "" : ", ") + std::to_string(p);
      throw TimeoutError("TCP transport of rank " + std::to_string(rank_) + ": ranks [" + missing +
                         "] did not connect within " + std::to_string(timeout_s) + " s");
    }
    check();
    std::vector<pollfd> fds{{listener_.fd(), POLLIN, 0}};
    for (auto& q : pending) fds.push_back({q.sock.fd(), POLLIN, 0});
    ::poll(fds.data(), fds.size(), deadline.poll_ms(100));
    if (fds[0].revents & POLLIN) {
      net::Socket s = listener_.accept(0);
      if (s.valid()) {
        if (pending.size() >= 64) pending.erase(pending.begin());  // oldest stranger out
        pending.push_back({std::move(s), {}, net::Deadline(2.0)});
      }
    }
    for (auto& q : pending) {
      char buf[sizeof(Hello)];
      long n = q.sock.recv_some(buf, sizeof(Hello) - q.in.size());
      if (n == 0) q.sock.close();
      if (n > 0) q.in.append(buf, static_cast<size_t>(n));
      if (q.sock.valid() && q.in.size() < sizeof(Hello) && q.hello.expired()) q.sock.close();
      if (!q.sock.valid() || q.in.size() < sizeof(Hello)) continue;
      Hello theirs;
      std::memcpy(&theirs, q.in.data(), sizeof(theirs));
      bool known = theirs.magic == kDataMagic && theirs.rank >= 0 && theirs.rank < rank_ &&
                   std::find(peers.begin(), peers.end(), theirs.rank) != peers.end() &&
                   !peers_[theirs.rank]->sock.valid();
      const bool ok = known && wire::secrets_equal(theirs.secret, reinterpret_cast<const uint8_t*>(secret_.data()));
      uint8_t answer = ok ? 1 : 0;  // a stranger or a wrong secret is refused; keep waiting for real peers
      try {
        q.sock.send_all(&answer, 1, net::Deadline(1.0), nullptr, "TCP hello answer");
      } catch (const Error&) {
        q.sock.close();
        continue;
      }
      if (ok) {
        peers_[theirs.rank]->sock = std::move(q.sock);
        --expected_accepts;
      }
      q.sock.close();
    }
    std::erase_if(pending, [](const Pending& q) { return !q.sock.valid(); });
  }
  for (int p : peers) {
    if (p < rank_) continue;
    uint8_t answer = 0;
    std::string what = "TCP handshake with rank " + std::to_string(p);
    peers_[p]->sock.recv_all(&answer, 1, deadline, check, what);
    if (answer != 1) throw AuthenticationError(what + ": refused (secret mismatch)");
  }
  listener_.close();
  proxy_ = std::thread([this] { proxy_loop(); });
  receiver_ = std::thread([this] { receive_loop(); });
}

void TcpTransport::register_memory(const RegisteredMemory& m) {
  std::lock_guard<std::mutex> lock(mem_mu_);
  memories_[m.id()] = m;
}

std::shared_ptr<Connection> TcpTransport::connection(int peer) {
  if (!peers_[peer]->sock.valid())
    throw InternalError("no TCP connection from rank " + std::to_string(rank_) + " to rank " + std::to_string(peer));
  return std::make_shared<TcpConnection>(shared_from_this(), peer);
}

void TcpTransport::stop() {
  if (stop_.exchange(true)) return;
  queue_cv_.notify_all();
  if (proxy_.joinable()) proxy_.join();
  if (receiver_.joinable()) receiver_.join();
  for (auto& p : peers_) p->sock.close();
  listener_.close();
  std::lock_guard<std::mutex> lock(mem_mu_);
  memories_.clear();  // the memory itself is released by its other owners
}

void TcpTransport::enqueue(uint16_t type, int peer, uint32_t id, uint64_t offset, const void* src, uint64_t bytes) {
  // A PUT into a failed communicator is refused; signals still go out (the data a peer needs
  // has arrived, and a credit returned to a dead rank must not fail the call that consumed it).
  if (type == kPut) health_->check();
  if (type != kAck) peers_[peer]->queued.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    queue_.push_back({type, peer, id, offset, src, bytes});
  }
  queue_cv_.notify_one();
}

void TcpTransport::wait_sent(int peer, double timeout_s) {
  Peer& p = *peers_[peer];
  uint64_t target = p.queued.load(std::memory_order_relaxed);
  health_->wait([&] { return p.sent.load(std::memory_order_acquire) >= target; }, timeout_s,
                [&] { return "TCP send to rank " + std::to_string(peer); }, peer);
}

void TcpTransport::flush(int peer, double timeout_s) {
  Peer& p = *peers_[peer];
  uint64_t seq = p.flushes.fetch_add(1) + 1;
  enqueue(kFlush, peer, 0, seq, nullptr, 0);
  health_->wait([&] { return p.acked.load(std::memory_order_acquire) >= seq; }, timeout_s,
                [&] { return "flush to rank " + std::to_string(peer) + " (waiting for its acknowledgement)"; }, peer);
}

void TcpTransport::peer_failed(int peer, const std::string& why) {
  if (stop_) return;
  // A rank that fails on purpose (say, arguments differ) reports why through the bootstrap and
  // exits, closing its sockets: give that report a moment to arrive, so waiters raise the cause.
  for (int i = 0; i < 100 && !stop_ && !health_->peer_reported_failure(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  health_->fail(ErrorKind::PeerFailure, "TCP connection between rank " + std::to_string(rank_) + " and rank " +
                                            std::to_string(peer) + " failed: " + why);
}

void TcpTransport::proxy_loop() {
  auto stopping = [this] {
    if (stop_) throw Aborted("transport stopped");
  };
  while (true) {
    Request req;
    {
      std::unique_lock<std::mutex> lock(queue_mu_);
      queue_cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      req = queue_.front();
      queue_.pop_front();
    }
    Peer& p = *peers_[req.peer];
    DataFrame f{kDataMagic, req.type, 0, req.id, 0, req.offset, req.type == kPut ? req.bytes : 0};
    std::string failure;
    try {
      net::Deadline deadline(timeout_s_);
      std::string what = "TCP send to rank " + std::to_string(req.peer);
      p.sock.send_all(&f, sizeof(f), deadline, stopping, what);
      if (req.type == kPut && req.bytes) p.sock.send_all(req.src, req.bytes, deadline, stopping, what);
    } catch (const Aborted&) {
      return;
    } catch (const Error& e) {
      failure = e.what();
    }
    // Done with the frame either way: wait_sent() only promises its source is no longer read.
    if (req.type != kAck) p.sent.fetch_add(1, std::memory_order_release);
    if (!failure.empty()) peer_failed(req.peer, failure);
  }
}

void TcpTransport::receive_loop() {
  std::vector<int> ranks;
  for (int r = 0; r < size_; ++r)
    if (peers_[r]->sock.valid()) ranks.push_back(r);
  while (!stop_) {
    std::vector<pollfd> fds;
    for (int r : ranks) fds.push_back({peers_[r]->sock.fd(), POLLIN, 0});
    if (fds.empty()) return;
    if (::poll(fds.data(), fds.size(), 100) <= 0) continue;
    for (size_t i = 0; i < fds.size(); ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      try {
        receive_frame(ranks[i]);
      } catch (const Aborted&) {
        return;
      } catch (const Error& e) {
        peer_failed(ranks[i], e.what());
        ranks.erase(ranks.begin() + static_cast<long>(i));
        break;
      }
    }
  }
}

void TcpTransport::receive_frame(int peer) {
  Peer& p = *peers_[peer];
  auto stopping = [this] {
    if (stop_) throw Aborted("transport stopped");
  };
  net::Deadline deadline(timeout_s_);
  std::string what = "TCP receive from rank " + std::to_string(peer);
  DataFrame f;
  if (!p.sock.recv_all(&f, sizeof(f), deadline, stopping, what, true)) throw PeerFailure("connection closed");
  if (f.magic != kDataMagic) throw PeerFailure("malformed frame (bad magic)");
  switch (f.type) {
    case kPut: {
      void* dst = nullptr;
      {
        std::lock_guard<std::mutex> lock(mem_mu_);
        auto it = memories_.find(f.id);
        if (it == memories_.end()) throw PeerFailure("write to unknown memory id " + std::to_string(f.id));
        const RegisteredMemory& m = it->second;
        if (f.offset > m.size() || f.length > m.size() - f.offset)
          throw PeerFailure("write of " + std::to_string(f.length) + " bytes at offset " + std::to_string(f.offset) +
                            " is outside memory " + std::to_string(f.id) + " (" + std::to_string(m.size()) + " bytes)");
        dst = static_cast<char*>(m.data()) + f.offset;
      }
      p.sock.recv_all(dst, f.length, deadline, stopping, what);
      break;
    }
    case kSignal:
      if (f.id >= slots_per_peer_) throw PeerFailure("signal to unknown semaphore slot " + std::to_string(f.id));
      counters_[(static_cast<size_t>(peer) * slots_per_peer_ + f.id) * stride_].fetch_add(1, std::memory_order_release);
      break;
    case kFlush:
      enqueue(kAck, peer, 0, f.offset, nullptr, 0);
      break;
    case kAck:
      p.acked.store(f.offset, std::memory_order_release);
      break;
    default:
      throw PeerFailure("malformed frame (type " + std::to_string(f.type) + ")");
  }
}

}  // namespace mscomm
