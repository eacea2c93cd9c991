// Frames exchanged between bootstrap clients and the root. Every length read off the network is
// checked against a bound before anything is allocated.
#pragma once
#include <cstdint>

namespace mscomm::wire {

constexpr uint32_t kBootstrapMagic = 0x4253434d;  // "MCSB"
constexpr uint32_t kVersion = 1;

enum FrameType : uint16_t {
  kHello = 1,            // client -> root: HelloPayload
  kWelcome = 2,          // root -> client
  kReject = 3,           // root -> client: reason text, then the root closes
  kAllgather = 4,        // client -> root: tag = sequence number, payload = blob
  kAllgatherResult = 5,  // root -> client: size x (u64 length, bytes)
  kSend = 6,             // client -> root: dst, tag, payload
  kDeliver = 7,          // root -> client: src, tag, payload
  kFailure = 8,          // both ways: u8 ErrorKind + message; src = the failed rank
  kBye = 9,              // client -> root: leaving cleanly
  kStatusRequest = 10,   // client -> root: tag = sequence number
  kStatus = 11,          // root -> client: one RankState byte per rank
  kLeaving = 12,         // client -> root -> every other client: src is closing its communicator
};

enum RankState : uint8_t { kNeverJoined = 0, kJoined = 1, kContributed = 2, kFailed = 3, kLeft = 4 };

struct FrameHeader {
  uint32_t magic;
  uint16_t type;
  uint16_t reserved;
  int32_t src;
  int32_t dst;
  uint64_t tag;
  uint64_t length;
};
static_assert(sizeof(FrameHeader) == 32, "bootstrap frame header must be 32 bytes");

struct HelloPayload {
  uint32_t version;
  int32_t rank;
  int32_t size;
  int32_t pid;
  uint8_t secret[32];
};
static_assert(sizeof(HelloPayload) == 48, "hello payload must be 48 bytes");

constexpr size_t kSecretBytes = 32;

// Constant-time comparison, so response timing does not leak how much of a guess was right.
inline bool secrets_equal(const uint8_t* a, const uint8_t* b) {
  uint8_t diff = 0;
  for (size_t i = 0; i < kSecretBytes; ++i) diff |= static_cast<uint8_t>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace mscomm::wire
