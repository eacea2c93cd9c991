// The one error model of mscomm. C++ throws these; the bindings translate each to the Python
// class of the same name in mscomm.errors, which also subclasses the closest builtin.
#pragma once
#include <stdexcept>
#include <string>

namespace mscomm {

enum class ErrorKind : uint8_t {
  Internal = 0,
  InvalidArgument = 1,  // bad input from the caller (Python ValueError)
  Timeout = 2,          // a blocking call ran out of time (Python TimeoutError)
  PeerFailure = 3,      // a peer died, disconnected or reported an error (Python ConnectionError)
  Authentication = 4,   // a peer did not present the job's secret (Python PermissionError)
  Aborted = 5,          // comm.abort() was called (Python ConnectionAbortedError)
};

const char* error_kind_name(ErrorKind kind);

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

struct InvalidArgument : Error {
  explicit InvalidArgument(const std::string& m) : Error(ErrorKind::InvalidArgument, m) {}
};
struct TimeoutError : Error {
  explicit TimeoutError(const std::string& m) : Error(ErrorKind::Timeout, m) {}
};
struct PeerFailure : Error {
  explicit PeerFailure(const std::string& m) : Error(ErrorKind::PeerFailure, m) {}
};
struct AuthenticationError : Error {
  explicit AuthenticationError(const std::string& m) : Error(ErrorKind::Authentication, m) {}
};
struct Aborted : Error {
  explicit Aborted(const std::string& m) : Error(ErrorKind::Aborted, m) {}
};
struct InternalError : Error {
  explicit InternalError(const std::string& m) : Error(ErrorKind::Internal, m) {}
};

// Throws the Error subclass matching kind (used to re-raise an error a peer reported).
[[noreturn]] void throw_error(ErrorKind kind, const std::string& message);

// errno-based failure of a system call, as an InternalError naming the call.
[[noreturn]] void throw_system_error(const std::string& what);

}  // namespace mscomm

#define MSCOMM_CHECK_ARG(cond, msg)                                        \
  do {                                                                     \
    if (!(cond)) throw ::mscomm::InvalidArgument(std::string(msg));        \
  } while (0)
