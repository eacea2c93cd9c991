#include "mscomm/bootstrap.hpp"

#include <unistd.h>

#include <cstring>
#include <fstream>
#include <random>

#include "bootstrap_root.hpp"
#include "bootstrap_wire.hpp"
#include "mscomm/env.hpp"
#include "socket.hpp"

namespace mscomm {

using namespace wire;

namespace {

constexpr char kScheme[] = "mscomm://";

std::string to_hex(const std::string& raw) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) { out += digits[c >> 4]; out += digits[c & 15]; }
  return out;
}

std::string random_secret() {
  std::string s(kSecretBytes, '\0');
  std::ifstream urandom("/dev/urandom", std::ios::binary);
  if (!urandom.read(s.data(), static_cast<std::streamsize>(s.size())))
    throw InternalError("cannot read /dev/urandom for the job secret");
  return s;
}

// Listeners bound by create_unique_id in this process, adopted by rank 0.
std::mutex g_listeners_mu;
std::map<int, net::Socket> g_listeners;

std::string rank_list(const std::vector<int>& ranks) {
  std::string s = "[";
  for (size_t i = 0; i < ranks.size(); ++i) s += (i ? ", " : "") + std::to_string(ranks[i]);
  return s + "]";
}

}  // namespace

std::string UniqueId::str() const {
  return kScheme + net::Address{host, port}.str() + "/" + to_hex(secret);
}

UniqueId UniqueId::parse(const std::string& text) {
  const std::string hint = " (expected mscomm://host:port/<64 hex digits>, as made by mscomm.create_unique_id())";
  if (text.rfind(kScheme, 0) != 0) throw InvalidArgument("malformed unique id '" + text + "'" + hint);
  std::string rest = text.substr(sizeof(kScheme) - 1);
  size_t slash = rest.rfind('/');
  if (slash == std::string::npos) throw InvalidArgument("malformed unique id: no secret" + hint);
  net::Address addr = net::parse_address(rest.substr(0, slash));
  std::string hex = rest.substr(slash + 1);
  if (hex.size() != 2 * kSecretBytes) throw InvalidArgument("malformed unique id: secret must have 64 hex digits" + hint);
  std::string secret;
  for (size_t i = 0; i < hex.size(); i += 2) {
    auto nib = [&](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      throw InvalidArgument("malformed unique id: secret is not hexadecimal" + hint);
    };
    secret += static_cast<char>(nib(hex[i]) * 16 + nib(hex[i + 1]));
  }
  return UniqueId{addr.host, addr.port, secret};
}

UniqueId create_unique_id(const std::string& host, int port) {
  net::Socket listener = net::Socket::listen(host, port);
  UniqueId id{host, listener.local_port(), random_secret()};
  std::lock_guard<std::mutex> lock(g_listeners_mu);
  g_listeners[id.port] = std::move(listener);
  return id;
}

Bootstrap::Bootstrap(int rank, int size, const UniqueId& id, double timeout_s)
    : rank_(rank), size_(size), secret_(id.secret), left_(new std::atomic<bool>[size > 0 ? size : 1]) {
  for (int r = 0; r < size; ++r) left_[r].store(false);
  MSCOMM_CHECK_ARG(size >= 1, "world size must be >= 1, got " + std::to_string(size));
  MSCOMM_CHECK_ARG(rank >= 0 && rank < size,
                   "rank " + std::to_string(rank) + " is outside 0.." + std::to_string(size - 1));
  MSCOMM_CHECK_ARG(id.secret.size() == kSecretBytes, "unique id has no valid secret");
  size_t max_frame = static_cast<size_t>(env_int("MSCOMM_MAX_FRAME_BYTES"));
  if (rank == 0) {
    net::Socket listener;
    {
      std::lock_guard<std::mutex> lock(g_listeners_mu);
      auto it = g_listeners.find(id.port);
      if (it != g_listeners.end()) {
        listener = std::move(it->second);
        g_listeners.erase(it);
      }
    }
    if (!listener.valid()) listener = net::Socket::listen(id.host, id.port);
    root_ = std::make_unique<BootstrapRoot>(std::move(listener), size, id.secret, max_frame);
  }
  net::Deadline deadline(timeout_s);
  std::string what = "bootstrap of rank " + std::to_string(rank);
  sock_ = std::make_unique<net::Socket>(net::Socket::connect({id.host, id.port}, deadline, nullptr, what));
  local_host_ = sock_->local_host();

  HelloPayload hello{kVersion, rank, size, static_cast<int32_t>(getpid()), {}};
  std::memcpy(hello.secret, id.secret.data(), kSecretBytes);
  FrameHeader h{kBootstrapMagic, kHello, 0, rank, -1, 0, sizeof(hello)};
  std::string frame(reinterpret_cast<const char*>(&h), sizeof(h));
  frame.append(reinterpret_cast<const char*>(&hello), sizeof(hello));
  sock_->send_all(frame.data(), frame.size(), deadline, nullptr, what);

  FrameHeader reply;
  try {
    sock_->recv_all(&reply, sizeof(reply), deadline, nullptr, what);
  } catch (const PeerFailure&) {
    throw AuthenticationError(what + ": rank 0 at " + net::Address{id.host, id.port}.str() +
                              " closed the connection without an answer (is that port an mscomm job?)");
  }
  if (reply.magic != kBootstrapMagic || reply.length > 4096)
    throw AuthenticationError(what + ": " + net::Address{id.host, id.port}.str() + " is not an mscomm bootstrap");
  std::string text(reply.length, '\0');
  sock_->recv_all(text.data(), text.size(), deadline, nullptr, what);
  if (reply.type == kReject) {
    if (text.rfind("authentication", 0) == 0) throw AuthenticationError(what + " refused by rank 0: " + text);
    throw InvalidArgument(what + " refused by rank 0: " + text);
  }
  if (reply.type != kWelcome) throw InternalError(what + ": unexpected reply from rank 0");
  reader_ = std::thread([this] { reader_loop(); });
}

Bootstrap::~Bootstrap() {
  try {
    close(env_double("MSCOMM_SHUTDOWN_TIMEOUT"));
  } catch (...) {
  }
}

void Bootstrap::close(double timeout_s) {
  if (closed_) return;
  closed_ = true;
  stop_ = true;  // from here on, the root closing our connection is expected
  try {
    send_frame(kBye, -1, 0, "");
  } catch (const Error&) {
  }
  if (root_) root_->finish(timeout_s);
  if (reader_.joinable()) reader_.join();
  sock_->close();
  root_.reset();
}

void Bootstrap::send_frame(uint16_t type, int dst, uint64_t tag, const std::string& payload) {
  FrameHeader h{kBootstrapMagic, type, 0, rank_, dst, tag, payload.size()};
  std::string frame(reinterpret_cast<const char*>(&h), sizeof(h));
  frame += payload;
  std::lock_guard<std::mutex> lock(send_mu_);
  sock_->send_all(frame.data(), frame.size(), net::Deadline(env_double("MSCOMM_TIMEOUT")), nullptr,
                  "bootstrap send from rank " + std::to_string(rank_));
}

void Bootstrap::record_failure(ErrorKind kind, const std::string& message, int how) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (failed_.load()) return;
    failure_ = {kind, message};
    failed_.store(how, std::memory_order_release);
  }
  cv_.notify_all();
  if (env_bool("MSCOMM_DEBUG")) fprintf(stderr, "[mscomm rank %d] failure: %s\n", rank_, message.c_str());
}

void Bootstrap::reader_loop() {
  const size_t max_len = static_cast<size_t>(env_int("MSCOMM_MAX_FRAME_BYTES")) * (size_ + 1) + 8 * size_;
  auto stopping = [this] {
    if (stop_) throw Aborted("stopping");
  };
  try {
    while (!stop_) {
      FrameHeader h;
      net::Deadline forever(1e9);
      if (!sock_->recv_all(&h, sizeof(h), forever, stopping, "bootstrap", true))
        throw PeerFailure("connection closed");
      if (h.magic != kBootstrapMagic || h.length > max_len)
        throw PeerFailure("malformed frame from the bootstrap root");
      std::string payload(h.length, '\0');
      sock_->recv_all(payload.data(), payload.size(), forever, stopping, "bootstrap");
      std::unique_lock<std::mutex> lock(mu_);
      switch (h.type) {
        case kAllgatherResult: {
          std::vector<std::string> blobs;
          size_t pos = 0;
          for (int r = 0; r < size_; ++r) {
            uint64_t len;
            if (pos + 8 > payload.size()) throw PeerFailure("truncated allgather result");
            std::memcpy(&len, payload.data() + pos, 8);
            pos += 8;
            if (len > payload.size() - pos) throw PeerFailure("truncated allgather result");
            blobs.push_back(payload.substr(pos, len));
            pos += len;
          }
          results_[h.tag] = std::move(blobs);
          break;
        }
        case kDeliver:
          mailbox_[{h.src, h.tag}].push_back(std::move(payload));
          break;
        case kStatus:
          status_[h.tag] = std::move(payload);
          break;
        case kLeaving:
          if (h.src >= 0 && h.src < size_ && !left_[h.src].exchange(true)) left_count_.fetch_add(1);
          break;
        case kFailure: {
          lock.unlock();
          ErrorKind kind = payload.empty() ? ErrorKind::PeerFailure : static_cast<ErrorKind>(payload[0]);
          // A rank that timed out reports it as a timeout (its message names whom it waited for).
          if (kind > ErrorKind::Aborted) kind = ErrorKind::PeerFailure;
          std::string msg = payload.size() > 1 ? payload.substr(1) : "unknown failure";
          record_failure(kind, "rank " + std::to_string(h.src) + " failed: " + msg);
          break;
        }
        default:
          break;
      }
      cv_.notify_all();
    }
  } catch (const Aborted&) {
  } catch (const Error& e) {
    if (!stop_)
      record_failure(ErrorKind::PeerFailure,
                     "rank " + std::to_string(rank_) + " lost its connection to the bootstrap on rank 0 (" +
                         e.what() + "); rank 0 has probably died",
                     kLostRoot);
  }
}

void Bootstrap::check() const {
  if (!failed_.load(std::memory_order_acquire)) return;
  std::lock_guard<std::mutex> lock(mu_);
  throw_error(failure_.kind, failure_.message);
}

void Bootstrap::announce_leaving() {
  try {
    send_frame(kLeaving, -1, 0, "");
  } catch (const Error&) {
  }
}

void Bootstrap::report_failure(ErrorKind kind, const std::string& message) {
  std::string payload(1, static_cast<char>(kind));
  payload += message;
  try {
    send_frame(kFailure, -1, 0, payload);
  } catch (const Error&) {
  }
}

std::vector<std::string> Bootstrap::allgather(const std::string& mine, const std::string& what, double timeout_s) {
  uint64_t seq;
  {
    std::lock_guard<std::mutex> lock(mu_);
    seq = next_seq_++;
  }
  check();
  // Each contribution starts with the operation's name, so ranks that are in different
  // operations (a bug in the caller) get a clear error instead of each other's data.
  send_frame(kAllgather, -1, seq, what + '\0' + mine);
  net::Deadline deadline(timeout_s);
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    auto it = results_.find(seq);
    if (it != results_.end()) {
      auto out = std::move(it->second);
      results_.erase(it);
      lock.unlock();
      for (int r = 0; r < size_; ++r) {
        size_t cut = out[r].find('\0');
        std::string theirs = cut == std::string::npos ? "?" : out[r].substr(0, cut);
        if (theirs != what && theirs == "close")
          throw PeerFailure("rank " + std::to_string(r) + " has left: it is closing its communicator (or its process "
                            "is exiting) while rank " + std::to_string(rank_) + " is in '" + what + "'");
        if (theirs != what)
          throw InvalidArgument("bootstrap operation #" + std::to_string(seq) + ": rank " + std::to_string(rank_) +
                                " is in '" + what + "' but rank " + std::to_string(r) + " is in '" + theirs +
                                "'; every rank must create communicators, exchange memory and close in the same order");
        out[r].erase(0, cut + 1);
      }
      return out;
    }
    if (failed_.load()) throw_error(failure_.kind, failure_.message + " (during " + what + ")");
    // A rank that is closing will not join any other operation: waiting for it is hopeless.
    // (Its own "close" may still be on its way: give the result a moment to arrive.)
    if (left_count_.load() && what != "close" && deadline.elapsed() > kLeftGraceSeconds) {
      for (int r = 0; r < size_; ++r)
        if (r != rank_ && left_[r].load())
          throw PeerFailure("rank " + std::to_string(r) + " has left: it closed its communicator (or its process "
                            "exited) while rank " + std::to_string(rank_) + " waits for it in '" + what + "'");
    }
    if (deadline.expired()) {
      lock.unlock();
      throw_timeout(what, seq, deadline.elapsed());
    }
    cv_.wait_for(lock, std::chrono::milliseconds(deadline.poll_ms(100)));
  }
}

void Bootstrap::throw_timeout(const std::string& what, uint64_t seq, double waited) {
  std::string states;
  try {
    send_frame(kStatusRequest, -1, seq, "");
    net::Deadline deadline(2.0);
    std::unique_lock<std::mutex> lock(mu_);
    while (!status_.count(seq) && !deadline.expired()) cv_.wait_for(lock, std::chrono::milliseconds(50));
    if (status_.count(seq)) states = status_[seq];
  } catch (const Error&) {
  }
  std::string msg = what + " timed out on rank " + std::to_string(rank_) + " after " + std::to_string(waited) + " s";
  if (states.size() == static_cast<size_t>(size_)) {
    std::vector<int> silent, never, failed;
    for (int r = 0; r < size_; ++r) {
      if (states[r] == kNeverJoined) never.push_back(r);
      else if (states[r] == kFailed) failed.push_back(r);
      if (states[r] != kContributed) silent.push_back(r);
    }
    msg += ": not heard from ranks " + rank_list(silent);
    if (!never.empty()) msg += " (never joined: " + rank_list(never) + ")";
    if (!failed.empty()) msg += " (failed: " + rank_list(failed) + ")";
  } else {
    msg += " (rank 0 did not answer a status request)";
  }
  throw TimeoutError(msg + ". Check that every rank calls the same operations, or raise the timeout.");
}

void Bootstrap::barrier(const std::string& what, double timeout_s) { allgather("", what, timeout_s); }

void Bootstrap::send(int peer, uint64_t tag, const std::string& data) {
  MSCOMM_CHECK_ARG(peer >= 0 && peer < size_, "send: peer " + std::to_string(peer) + " is not a rank");
  check();
  send_frame(kSend, peer, tag, data);
}

std::string Bootstrap::recv(int peer, uint64_t tag, double timeout_s) {
  MSCOMM_CHECK_ARG(peer >= 0 && peer < size_, "recv: peer " + std::to_string(peer) + " is not a rank");
  net::Deadline deadline(timeout_s);
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    auto it = mailbox_.find({peer, tag});
    if (it != mailbox_.end() && !it->second.empty()) {
      std::string out = std::move(it->second.front());
      it->second.erase(it->second.begin());
      if (it->second.empty()) mailbox_.erase(it);
      return out;
    }
    if (failed_.load()) throw_error(failure_.kind, failure_.message);
    if (deadline.expired())
      throw TimeoutError("bootstrap recv on rank " + std::to_string(rank_) + " from rank " + std::to_string(peer) +
                         " (tag " + std::to_string(tag) + ") timed out after " + std::to_string(deadline.elapsed()) +
                         " s: not heard from rank " + std::to_string(peer));
    cv_.wait_for(lock, std::chrono::milliseconds(deadline.poll_ms(100)));
  }
}

}  // namespace mscomm
