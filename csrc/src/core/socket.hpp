// Thin, timeout-aware TCP sockets used by the bootstrap and the TCP transport. Every blocking
// call takes a Deadline and an optional interrupt check, so nothing here can block forever.
#pragma once
#include <chrono>
#include <functional>
#include <string>

namespace mscomm::net {

using Clock = std::chrono::steady_clock;

class Deadline {
 public:
  explicit Deadline(double seconds);
  bool expired() const { return Clock::now() >= end_; }
  // Milliseconds to pass to poll(): the time left, capped so callers re-check interrupts.
  int poll_ms(int cap_ms) const;
  double seconds() const { return seconds_; }
  double elapsed() const;

 private:
  Clock::time_point start_, end_;
  double seconds_;
};

// Called while waiting; throws to interrupt (abort, peer failure). May be empty.
using Interrupt = std::function<void()>;

struct Address {
  std::string host;
  int port = 0;
  std::string str() const;
};
// "host:port" or "[v6addr]:port".
Address parse_address(const std::string& text);

class Socket {
 public:
  Socket() = default;
  explicit Socket(int fd) : fd_(fd) {}
  ~Socket() { close(); }
  Socket(Socket&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Socket& operator=(Socket&& o) noexcept;
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;

  // Connects, retrying while the listener is not up yet (connection refused) until the deadline.
  static Socket connect(const Address& to, const Deadline& deadline, const Interrupt& check,
                        const std::string& what);
  static Socket listen(const std::string& host, int port);
  // Waits up to timeout_ms for a connection; returns an invalid Socket when none came.
  Socket accept(int timeout_ms);

  void send_all(const void* data, size_t len, const Deadline& deadline, const Interrupt& check,
                const std::string& what);
  // Returns false when the peer closed the connection before the first byte and allow_eof is set.
  bool recv_all(void* data, size_t len, const Deadline& deadline, const Interrupt& check,
                const std::string& what, bool allow_eof = false);
  // Reads what is available without blocking; returns bytes read, 0 on EOF, -1 if nothing yet.
  long recv_some(void* data, size_t len);

  bool valid() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  void close();
  int local_port() const;
  std::string local_host() const;

 private:
  int fd_ = -1;
};

}  // namespace mscomm::net
