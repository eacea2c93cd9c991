// State the built-in collectives keep per communicator, created once on first use so no call
// allocates, registers or maps memory on the hot path.
//
// Scratch layout of every rank (one registered segment, exchanged with all ranks):
//   [call descriptors: 2 x 64 B][shm slot 0][shm slot 1][ring slot 0][ring slot 1]
// Channels to every peer: `data` (puts and "your data is ready" signals) and `credit` ("I have
// consumed your data, the slot is free again"), each with its own semaphore.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "mscomm/channel.hpp"
#include "mscomm/communicator.hpp"
#include "mscomm/dtype.hpp"

namespace mscomm {

// What a rank is about to do; compared across ranks at the first synchronization of a call.
struct CallDescriptor {
  uint64_t call;
  uint64_t count;
  uint32_t collective;
  uint8_t dtype;
  uint8_t op;
  uint8_t algorithm;
  uint8_t reserved;
  int32_t root;
  uint32_t reserved2;
  uint64_t pad[4];
};
static_assert(sizeof(CallDescriptor) == 64, "call descriptor must fill one cache line");

// The tuning table's inputs, read once from the environment.
struct Tuning {
  Tuning();
  std::string allreduce_algorithm;
  size_t oneshot_max_bytes, shm_slot_bytes, ring_slot_bytes;
};

struct CollectiveContext {
  explicit CollectiveContext(Communicator& comm);

  static constexpr size_t kDescriptorBytes = 2 * sizeof(CallDescriptor);
  Tuning tuning;
  size_t shm_slot_bytes, ring_slot_bytes;
  RegisteredMemory scratch;
  std::vector<RegisteredMemory> peer_scratch;  // every rank's scratch; mapped for same-host ranks
  std::vector<std::shared_ptr<Channel>> data, credit;  // by peer rank (null for this rank)
  bool all_local;
  uint64_t shm_phase = 0;   // uses of the shm slots; slot = phase % 2
  uint64_t ring_step = 0;   // steps of the ring; slot = step % 2
  CallDescriptor outgoing;  // the descriptor a ring sends; must outlive the proxy's send

  char* descriptor(int rank, uint64_t call) const;
  char* shm_slot(int rank, uint64_t phase) const;
  size_t ring_slot_offset(uint64_t step) const;
  char* ring_slot(uint64_t step) const;
};

}  // namespace mscomm
