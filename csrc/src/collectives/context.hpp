// State the built-in collectives keep per communicator, connected once on the first collective so
// no call allocates, registers or maps memory on the hot path.
//
// Scratch layout of every rank (one registered segment, exchanged with all ranks):
//   [descriptors: size x 4 x 64 B][shm slot 0][shm slot 1][p2p slots: size x 2 x chunk]
// Descriptor entry (w, k) holds what rank w announced: k = 0, 1 for collectives (by call
// parity), k = 2, 3 for point-to-point transfers (by per-pair sequence parity). P2P slots
// (s, 0..1) receive the chunks rank s sends to this rank.
// Channels to every peer: `data` (puts and "your data is ready" signals) and `credit` ("I have
// consumed your chunk, the slot is free again"), each with its own semaphore.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "mscomm/channel.hpp"
#include "mscomm/communicator.hpp"
#include "mscomm/dtype.hpp"

namespace mscomm {

class Plan;  // mscomm/plan.hpp

// Where a call's buffer lies: in registered buffer `handle` at `offset`, or (handle 0, not
// registered) at address `offset` of the rank's process.
struct BufferRef {
  uint64_t handle = 0, offset = 0;
};

// What a rank is about to do; compared with its peers' at the first synchronization of a call.
struct CallDescriptor {
  uint64_t call;        // collectives: call number; point-to-point: per-pair sequence
  uint64_t count;       // elements (of the call, or of this pair's transfer)
  uint32_t collective;  // Collective
  uint8_t dtype;
  uint8_t op;
  uint8_t algorithm;
  uint8_t reserved;
  int32_t root;         // root rank, or the tag of a send/recv
  uint32_t reserved2;
  BufferRef input, output;  // the direct path: where this rank's buffers are (Call::direct_begin)
};
static_assert(sizeof(CallDescriptor) == 64, "call descriptor must fill one cache line");

enum class Collective : uint32_t {
  Allreduce = 1, Reduce, Broadcast, Allgather, ReduceScatter, Alltoall, Alltoallv, Gather, Scatter, SendRecv, Barrier
};
const char* collective_name(uint32_t c);

// Algorithm ids, one namespace for every collective (the call descriptor carries the id, so
// ranks that chose differently fail their first exchange instead of mixing algorithms).
enum class Algo : uint8_t {
  None = 0, OneShot, Rsag, Direct, Ring, Hier, Chain, Staged, Pairwise, Rooted, Dissemination, Plan
};

// The tuning table's inputs, read once from the environment.
struct Tuning {
  Tuning();
  std::map<std::string, std::string> algorithm;  // MSCOMM_<COLLECTIVE>_ALGO, by collective name
  size_t oneshot_max_bytes, direct_min_bytes, cma_max_bytes, shm_slot_bytes, chunk_bytes, stream_min_bytes;
  bool check_args;  // MSCOMM_CHECK_ARGS: compare every call's arguments across all ranks
  bool cma;         // MSCOMM_CMA: try single-copy reads between same-host ranks
};

// A loaded plan offered as a row : it runs calls of its
// collective on a communicator of its world size, and is preferred for messages of
// [min_bytes, max_bytes] (max 0: only when asked for by name).
struct PlanRow {
  std::string name;  // "plan:<name>"
  Collective collective;
  int world_size;
  size_t min_bytes = 0, max_bytes = 0;
  std::shared_ptr<Plan> plan;  // what the executor runs
};

// Which ranks share a host, as the hierarchical algorithms need it.
struct HostLayout {
  explicit HostLayout(const Communicator& comm);
  std::vector<int> all;                       // 0..size-1
  std::vector<std::vector<int>> same_index;   // by rank: the ranks with its local index, one per host
  bool uniform = true;                        // every host has the same number of ranks
};

// A user buffer registered with register_buffer(): its pages moved into shared memory, and where
// every same-host peer's buffer of the same registration is mapped here.
struct UserBuffer {
  const char* ptr = nullptr;
  size_t bytes = 0;
  RegisteredMemory own;                 // invalid when the communicator spans several hosts
  std::vector<RegisteredMemory> peers;  // keeps the peers' mappings alive
  std::vector<const char*> peer_ptr;    // by rank: the start of its buffer here (null: not mapped)
  std::vector<size_t> peer_bytes;
};

struct CollectiveContext {
  // Cheap and local: tuning and layout only, so queries need no other rank.
  explicit CollectiveContext(Communicator& comm);
  // Collective, once: registers and exchanges the scratch and builds the channels.
  void connect(Communicator& comm);
  void probe_cma(Communicator& comm);

  Tuning tuning;
  HostLayout layout;
  int size;
  size_t descriptor_bytes, shm_slot_bytes, chunk_bytes;
  RegisteredMemory scratch;
  std::vector<RegisteredMemory> peer_scratch;  // every rank's scratch; mapped for same-host ranks
  std::vector<std::shared_ptr<Channel>> data, credit;  // by peer rank (null for this rank)
  uint64_t shm_phase = 0;               // uses of the shm slots; slot = phase % 2
  std::vector<uint64_t> sent, received;  // p2p chunks per peer; slot = chunk % 2
  std::vector<uint64_t> sends, recvs;    // point-to-point transfers to / from each peer
  std::vector<CallDescriptor> outgoing;  // descriptors in flight to each peer (outlive the proxy's send)
  std::vector<PlanRow> plans;              // loaded plans: rows of the selection table (selection.hpp)
  std::map<uint64_t, UserBuffer> buffers;  // registrations by handle (numbered alike on every rank)
  bool cma = false;                        // every rank can read every other's memory (one host)
  std::vector<int> pids;                   // by rank, for process_vm_readv
  uint64_t next_buffer = 1;

  size_t descriptor_offset(int writer, int entry) const;
  char* descriptor(int owner, int writer, int entry) const;  // owner's scratch must be mapped
  char* shm_slot(int rank, uint64_t phase) const;
  size_t p2p_offset(int sender, uint64_t chunk) const;
  char* p2p_slot(int sender, uint64_t chunk) const;  // in this rank's scratch
};

}  // namespace mscomm
