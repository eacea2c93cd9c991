#include "socket.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include "mscomm/errors.hpp"

namespace mscomm::net {

Deadline::Deadline(double seconds) : start_(Clock::now()), seconds_(seconds) {
  auto span = std::chrono::duration<double>(std::min(seconds, 1e9));
  end_ = start_ + std::chrono::duration_cast<Clock::duration>(span);
}

int Deadline::poll_ms(int cap_ms) const {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end_ - Clock::now()).count();
  return static_cast<int>(std::max<long long>(0, std::min<long long>(left + 1, cap_ms)));
}

double Deadline::elapsed() const {
  return std::chrono::duration<double>(Clock::now() - start_).count();
}

std::string Address::str() const {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

Address parse_address(const std::string& text) {
  Address a;
  size_t colon;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
      throw InvalidArgument("malformed address '" + text + "': expected [v6addr]:port");
    a.host = text.substr(1, close - 1);
    colon = close + 1;
  } else {
    colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0)
      throw InvalidArgument("malformed address '" + text + "': expected host:port");
    a.host = text.substr(0, colon);
  }
  std::string port = text.substr(colon + 1);
  char* end = nullptr;
  long p = std::strtol(port.c_str(), &end, 10);
  if (port.empty() || *end != '\0' || p <= 0 || p > 65535)
    throw InvalidArgument("malformed address '" + text + "': port must be 1-65535");
  a.port = static_cast<int>(p);
  return a;
}

Socket& Socket::operator=(Socket&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

void Socket::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

namespace {
void tune(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  int buf = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
  fcntl(fd, F_SETFD, FD_CLOEXEC);
}

struct AddrInfo {
  addrinfo* list = nullptr;
  AddrInfo(const std::string& host, int port, bool passive) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (passive) hints.ai_flags = AI_PASSIVE;
    std::string service = std::to_string(port);
    int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &list);
    if (rc != 0)
      throw InvalidArgument("cannot resolve host '" + host + "': " + gai_strerror(rc));
  }
  ~AddrInfo() { if (list) freeaddrinfo(list); }
};

std::string sockaddr_host(const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (ss.ss_family == AF_INET)
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(ss).sin_addr, buf, sizeof(buf));
  else if (ss.ss_family == AF_INET6)
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(ss).sin6_addr, buf, sizeof(buf));
  return buf;
}
}  // namespace

Socket Socket::connect(const Address& to, const Deadline& deadline, const Interrupt& check,
                       const std::string& what) {
  int delay_ms = 10;
  std::string last_error = "no attempt";
  while (true) {
    if (check) check();
    AddrInfo ai(to.host, to.port, false);
    for (addrinfo* p = ai.list; p; p = p->ai_next) {
      int fd = ::socket(p->ai_family, p->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, p->ai_protocol);
      if (fd < 0) continue;
      Socket s(fd);
      int rc = ::connect(fd, p->ai_addr, p->ai_addrlen);
      if (rc != 0 && errno == EINPROGRESS) {
        pollfd pfd{fd, POLLOUT, 0};
        int prc = ::poll(&pfd, 1, std::max(1, deadline.poll_ms(2000)));
        int err = 0;
        socklen_t len = sizeof(err);
        if (prc == 1) getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        else err = ETIMEDOUT;
        rc = err ? -1 : 0;
        errno = err;
      }
      if (rc == 0) {
        int flags = fcntl(fd, F_GETFL);
        fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
        tune(fd);
        return s;
      }
      last_error = std::strerror(errno);
    }
    if (deadline.expired())
      throw TimeoutError(what + ": could not connect to " + to.str() + " within " +
                         std::to_string(deadline.seconds()) + " s (last error: " + last_error + ")");
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(delay_ms, deadline.poll_ms(delay_ms))));
    delay_ms = std::min(delay_ms * 2, 200);
  }
}

Socket Socket::listen(const std::string& host, int port) {
  AddrInfo ai(host, port, true);
  std::string last_error = "no usable address";
  for (addrinfo* p = ai.list; p; p = p->ai_next) {
    int fd = ::socket(p->ai_family, p->ai_socktype | SOCK_CLOEXEC, p->ai_protocol);
    if (fd < 0) continue;
    Socket s(fd);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd, p->ai_addr, p->ai_addrlen) == 0 && ::listen(fd, 512) == 0) return s;
    last_error = std::strerror(errno);
  }
  throw InvalidArgument("cannot listen on " + Address{host, port}.str() + ": " + last_error);
}

Socket Socket::accept(int timeout_ms) {
  pollfd pfd{fd_, POLLIN, 0};
  if (::poll(&pfd, 1, timeout_ms) != 1) return Socket();
  int fd = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd < 0) return Socket();
  tune(fd);
  return Socket(fd);
}

void Socket::send_all(const void* data, size_t len, const Deadline& deadline, const Interrupt& check,
                      const std::string& what) {
  const char* p = static_cast<const char*>(data);
  while (len > 0) {
    ssize_t n = ::send(fd_, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      p += n;
      len -= static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
      throw PeerFailure(what + ": send failed: " + std::strerror(errno));
    if (check) check();
    if (deadline.expired())
      throw TimeoutError(what + ": send did not complete within " + std::to_string(deadline.seconds()) + " s");
    pollfd pfd{fd_, POLLOUT, 0};
    ::poll(&pfd, 1, deadline.poll_ms(100));
  }
}

bool Socket::recv_all(void* data, size_t len, const Deadline& deadline, const Interrupt& check,
                      const std::string& what, bool allow_eof) {
  char* p = static_cast<char*>(data);
  size_t got = 0;
  while (got < len) {
    ssize_t n = ::recv(fd_, p + got, len - got, MSG_DONTWAIT);
    if (n > 0) {
      got += static_cast<size_t>(n);
      continue;
    }
    if (n == 0) {
      if (allow_eof && got == 0) return false;
      throw PeerFailure(what + ": connection closed by peer");
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
      throw PeerFailure(what + ": receive failed: " + std::strerror(errno));
    if (check) check();
    if (deadline.expired())
      throw TimeoutError(what + ": nothing received within " + std::to_string(deadline.seconds()) + " s");
    pollfd pfd{fd_, POLLIN, 0};
    ::poll(&pfd, 1, deadline.poll_ms(100));
  }
  return true;
}

long Socket::recv_some(void* data, size_t len) {
  ssize_t n = ::recv(fd_, data, len, MSG_DONTWAIT);
  if (n >= 0) return n;
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return -1;
  return 0;  // error: treat like EOF, the caller reports the failure
}

int Socket::local_port() const {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len);
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in&>(ss).sin_port);
  return ntohs(reinterpret_cast<sockaddr_in6&>(ss).sin6_port);
}

std::string Socket::local_host() const {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len);
  return sockaddr_host(ss);
}


}  // namespace mscomm::net
