#include "bootstrap_root.hpp"

#include <poll.h>

#include <cstring>
#include <iostream>

#include "bootstrap_wire.hpp"
#include "mscomm/env.hpp"
#include "mscomm/errors.hpp"

namespace mscomm {

using namespace wire;

namespace {
constexpr double kHelloTimeoutS = 10.0;
constexpr double kRootSendTimeoutS = 10.0;
constexpr size_t kMaxPendingConnections = 64;

std::string frame_bytes(uint16_t type, int src, int dst, uint64_t tag, const std::string& payload) {
  FrameHeader h{kBootstrapMagic, type, 0, src, dst, tag, payload.size()};
  std::string out(reinterpret_cast<const char*>(&h), sizeof(h));
  out += payload;
  return out;
}
}  // namespace

struct BootstrapRoot::Conn {
  net::Socket sock;
  int rank = -1;
  std::string in;
  net::Deadline hello_deadline{kHelloTimeoutS};
  bool bye = false;
};

BootstrapRoot::BootstrapRoot(net::Socket listener, int size, std::string secret, size_t max_frame)
    : listener_(std::move(listener)), size_(size), secret_(std::move(secret)), max_frame_(max_frame),
      ranks_(size), state_(size, kNeverJoined) {
  thread_ = std::thread([this] { loop(); });
}

BootstrapRoot::~BootstrapRoot() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void BootstrapRoot::finish(double timeout_s) {
  net::Deadline deadline(timeout_s);
  while (!stop_ && !deadline.expired()) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

bool BootstrapRoot::all_left() const {
  for (uint8_t s : state_)
    if (s != kLeft && s != kFailed) return false;
  return true;
}

void BootstrapRoot::loop() {
  while (!stop_) {
    std::vector<pollfd> fds{{listener_.fd(), POLLIN, 0}};
    std::vector<Conn*> owners{nullptr};
    for (auto& c : pending_) { fds.push_back({c->sock.fd(), POLLIN, 0}); owners.push_back(c.get()); }
    for (auto& c : ranks_)
      if (c && c->sock.valid()) { fds.push_back({c->sock.fd(), POLLIN, 0}); owners.push_back(c.get()); }
    ::poll(fds.data(), fds.size(), 50);
    if (fds[0].revents & POLLIN) accept_new();
    for (size_t i = 1; i < fds.size(); ++i) {
      Conn* c = owners[i];
      if (!c->sock.valid()) continue;
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      if (!read_conn(*c)) drop(*c, "");
    }
    // Unauthenticated connections get a bounded time to say hello.
    for (auto& c : pending_)
      if (c && c->hello_deadline.expired()) c->sock.close();
    std::erase_if(pending_, [](const auto& c) { return !c || !c->sock.valid(); });
    for (auto& c : ranks_)
      if (c && !c->sock.valid()) c.reset();
    if (all_left()) stop_ = true;
  }
}

void BootstrapRoot::accept_new() {
  net::Socket s = listener_.accept(0);
  if (!s.valid()) return;
  // Too many connections that have not said hello: drop the oldest, so idle strangers cannot
  // keep real ranks (which say hello at once) out.
  // (Closed here, freed by the loop once it no longer holds pointers to it.)
  if (pending_.size() >= kMaxPendingConnections) pending_.front()->sock.close();
  auto c = std::make_unique<Conn>();
  c->sock = std::move(s);
  pending_.push_back(std::move(c));
}

bool BootstrapRoot::read_conn(Conn& c) {
  char buf[65536];
  long n = c.sock.recv_some(buf, sizeof(buf));
  if (n == 0) return false;
  if (n < 0) return true;
  c.in.append(buf, static_cast<size_t>(n));
  while (c.sock.valid()) {
    if (c.in.size() < sizeof(FrameHeader)) return true;
    FrameHeader h;
    std::memcpy(&h, c.in.data(), sizeof(h));
    if (h.magic != kBootstrapMagic) return false;
    if (c.rank < 0 && (h.type != kHello || h.length != sizeof(HelloPayload))) return false;
    if (h.length > max_frame_) {
      if (c.rank >= 0)
        broadcast_failure(c.rank, static_cast<uint8_t>(ErrorKind::InvalidArgument),
                          "rank " + std::to_string(c.rank) + " sent a bootstrap message of " +
                              std::to_string(h.length) + " bytes, above MSCOMM_MAX_FRAME_BYTES");
      return false;
    }
    if (c.in.size() < sizeof(h) + h.length) return true;
    if (!handle_frame(c)) return false;
  }
  return true;
}

bool BootstrapRoot::handle_frame(Conn& c) {
  FrameHeader h;
  std::memcpy(&h, c.in.data(), sizeof(h));
  std::string payload = c.in.substr(sizeof(h), h.length);
  c.in.erase(0, sizeof(h) + h.length);
  switch (h.type) {
    case kHello:
      on_hello(c, payload);
      return true;
    case kAllgather: {
      Gather& g = gathers_[h.tag];
      if (g.got.empty()) { g.got.assign(size_, false); g.blobs.assign(size_, {}); }
      if (g.got[c.rank]) return false;  // protocol violation
      g.got[c.rank] = true;
      g.blobs[c.rank] = std::move(payload);
      if (++g.count == size_) {
        std::string result;
        for (auto& b : g.blobs) {
          uint64_t len = b.size();
          result.append(reinterpret_cast<const char*>(&len), sizeof(len));
          result += b;
        }
        // Rank 0, in whose process this server runs, last: once rank 0 has its result, every other
        // rank's is in its socket, so rank 0 leaving a barrier (and even dying right after)
        // cannot keep the others from leaving it too.
        for (int k = 1; k <= size_; ++k) send_to(k % size_, kAllgatherResult, -1, h.tag, result);
        gathers_.erase(h.tag);
      }
      return true;
    }
    case kSend: {
      if (h.dst < 0 || h.dst >= size_) return false;
      if (ranks_[h.dst]) send_to(h.dst, kDeliver, c.rank, h.tag, payload);
      else undelivered_[h.dst].push_back(frame_bytes(kDeliver, c.rank, h.dst, h.tag, payload));
      return true;
    }
    case kFailure: {
      if (payload.empty()) return false;
      broadcast_failure(c.rank, static_cast<uint8_t>(payload[0]), payload.substr(1));
      return true;
    }
    case kLeaving:
      for (int r = 0; r < size_; ++r)
        if (r != c.rank && ranks_[r]) send_to(r, kLeaving, c.rank, 0, "");
      return true;
    case kBye:
      c.bye = true;
      state_[c.rank] = kLeft;
      return true;
    case kStatusRequest: {
      std::string states(state_.begin(), state_.end());
      auto it = gathers_.find(h.tag);
      for (int r = 0; r < size_; ++r)
        if (it != gathers_.end() && it->second.got[r] && states[r] == kJoined) states[r] = kContributed;
      send_to(c.rank, kStatus, -1, h.tag, states);
      return true;
    }
    default:
      return false;
  }
}

void BootstrapRoot::on_hello(Conn& c, const std::string& payload) {
  HelloPayload hello;
  std::memcpy(&hello, payload.data(), sizeof(hello));
  auto reject = [&](const std::string& why) {
    std::string f = frame_bytes(kReject, -1, hello.rank, 0, why);
    try {
      c.sock.send_all(f.data(), f.size(), net::Deadline(1.0), nullptr, "bootstrap reject");
    } catch (const Error&) {
    }
    c.sock.close();
  };
  if (!secrets_equal(hello.secret, reinterpret_cast<const uint8_t*>(secret_.data())))
    return reject("authentication failed: the connecting process does not hold this job's secret");
  if (hello.version != kVersion)
    return reject("bootstrap protocol version " + std::to_string(hello.version) + " != " + std::to_string(kVersion));
  if (hello.size != size_)
    return reject("world size " + std::to_string(hello.size) + " does not match rank 0's " + std::to_string(size_));
  if (hello.rank < 0 || hello.rank >= size_)
    return reject("rank " + std::to_string(hello.rank) + " is outside 0.." + std::to_string(size_ - 1));
  if (state_[hello.rank] != kNeverJoined)
    return reject("rank " + std::to_string(hello.rank) + " has already joined this job (two processes with the same rank?)");
  int r = hello.rank;
  for (auto& p : pending_) {
    if (p.get() != &c) continue;
    c.rank = r;
    ranks_[r] = std::move(p);
    break;
  }
  state_[r] = kJoined;
  send_to(r, kWelcome, -1, 0, "");
  for (const auto& f : failures_) send_raw(r, f);
  for (const auto& f : undelivered_[r]) send_raw(r, f);
  undelivered_.erase(r);
}

void BootstrapRoot::drop(Conn& c, const std::string& why) {
  int r = c.rank;
  c.sock.close();  // the loop frees closed connections once it is done with them
  if (r < 0) return;  // an unauthenticated stranger: nothing to report
  if (!c.bye && state_[r] != kFailed) {
    broadcast_failure(r, static_cast<uint8_t>(ErrorKind::PeerFailure),
                      why.empty() ? "rank " + std::to_string(r) +
                                        " lost its connection to the bootstrap (the process died or was killed)"
                                  : why);
  }
}

void BootstrapRoot::broadcast_failure(int rank, uint8_t kind, const std::string& message) {
  if (state_[rank] == kFailed) return;
  state_[rank] = kFailed;
  std::string payload(1, static_cast<char>(kind));
  payload += message;
  failures_.push_back(frame_bytes(kFailure, rank, -1, 0, payload));
  for (int r = 0; r < size_; ++r)
    if (r != rank && ranks_[r]) send_to(r, kFailure, rank, 0, payload);
}

bool BootstrapRoot::send_to(int rank, uint16_t type, int src, uint64_t tag, const std::string& payload) {
  return send_raw(rank, frame_bytes(type, src, rank, tag, payload));
}

bool BootstrapRoot::send_raw(int rank, const std::string& f) {
  Conn* c = ranks_[rank].get();
  if (!c || !c->sock.valid()) return false;
  try {
    c->sock.send_all(f.data(), f.size(), net::Deadline(kRootSendTimeoutS), nullptr, "bootstrap");
    return true;
  } catch (const Error&) {
    // A rank that cannot take a small message for 10 s is stuck or gone.
    drop(*c, "rank " + std::to_string(rank) + " stopped reading its bootstrap connection");
    return false;
  }
}

}  // namespace mscomm
