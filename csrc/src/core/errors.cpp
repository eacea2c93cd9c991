#include "mscomm/errors.hpp"

#include <cerrno>
#include <cstring>

namespace mscomm {

const char* error_kind_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::InvalidArgument: return "InvalidArgument";
    case ErrorKind::Timeout: return "Timeout";
    case ErrorKind::PeerFailure: return "PeerFailure";
    case ErrorKind::Authentication: return "Authentication";
    case ErrorKind::Aborted: return "Aborted";
    default: return "Internal";
  }
}

void throw_error(ErrorKind kind, const std::string& message) {
  switch (kind) {
    case ErrorKind::InvalidArgument: throw InvalidArgument(message);
    case ErrorKind::Timeout: throw TimeoutError(message);
    case ErrorKind::PeerFailure: throw PeerFailure(message);
    case ErrorKind::Authentication: throw AuthenticationError(message);
    case ErrorKind::Aborted: throw Aborted(message);
    default: throw InternalError(message);
  }
}

void throw_system_error(const std::string& what) {
  int err = errno;
  throw InternalError(what + ": " + std::strerror(err));
}

}  // namespace mscomm
