// The plan executor's internals. Words used here and in executor.cpp:
//   chunk     - a plan's unit: 1/(N·k) of the full buffer; the chunk grid is applied to the
//               actual count, so chunks differ by at most one element.
//   class     - which chunk of the full buffer a chunk reference holds (input, output and
//               scratch chunks all hold the data of some global chunk g; every step moves
//               chunks of one class, which the loader proves, so lengths always agree).
//   piece     - the part of every chunk one iteration handles: elements [p·cap, (p+1)·cap) of
//               it. The executor runs the whole step list once per piece, so ranks pipeline
//               pieces (rank r works on piece p+1 while its successor works on p).
//   slot      - one of a rank's two staging areas in its workspace (iteration parity). It holds,
//               per iteration, the rank's scratch chunks and the landing zones of the output
//               chunks peers put into: puts always land in the receiver's registered workspace,
//               and the receiver copies a landed output chunk into its output at the wait that
//               makes it visible.
//   credit    - after each iteration every rank signals every peer "done through iteration G";
//               before writing into a peer's slot in iteration G a rank waits for the peer's
//               credit for G-2, the last iteration that used the same slot.
//
// Workspace of every rank (registered once per communicator, shared by all its plans):
//   [descriptors: size x 2 x 64 B][slot 0][slot 1]
// Descriptor entry (w, call % 2) holds what rank w announced for its call; the receiver checks
// it at its first wait on w in a call, so ranks running different plans or counts fail loudly.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "mscomm/channel.hpp"
#include "mscomm/communicator.hpp"
#include "mscomm/semaphore.hpp"

namespace mscomm::executor {

enum class Buf : uint8_t { Input = 0, Output = 1, Scratch = 2 };
enum class OpKind : uint8_t { Put, Signal, Wait, Reduce, Copy };
enum class CollectiveKind : uint8_t { Allgather, ReduceScatter, Allreduce };

struct Ref {
  Buf buf;
  uint32_t index;
};

// One step of this rank, resolved: classes, landing places and hazards computed by the loader.
struct Op {
  OpKind kind;
  int step;            // index in the plan's step list of this rank (for error messages)
  int peer = -1;
  uint32_t cls = 0;    // class of the data moved (data ops)
  Ref dst{};           // reduce/copy: local; put: the peer's chunk
  std::vector<Ref> srcs;
  uint32_t remote_slot = 0;  // put: index of the destination in the peer's slot
  bool first_to_peer = false;    // put/signal: first one to this peer in the step list
  bool first_from_peer = false;  // wait: first one on this peer
  bool sync_before = false;      // in place over TCP: an aliased source may still be in flight
  // wait: the output chunks that peer put here since its previous signal (slot index, output index)
  std::vector<std::pair<uint32_t, uint32_t>> copy_out;
};

// A plan checked and compiled for one rank of a communicator of its size.
struct Program {
  std::string name, collective_name, digest;
  CollectiveKind collective;
  int num_ranks = 0, k = 0, rank = 0;
  uint64_t digest64 = 0;
  std::vector<Op> ops;
  std::vector<uint32_t> footprint;  // by rank: scratch chunks + landing zones (slot chunks)
  uint32_t max_footprint = 0;
  std::vector<int> put_peers;       // peers this rank puts or signals to
  bool in_place_safe = true;        // in place, no step reads an input chunk after its output twin is written
  size_t num_steps = 0;
};

// Parses and checks plan JSON for `rank` of `size` ranks; throws InvalidArgument.
std::shared_ptr<Program> compile(const std::string& json, int rank, int size);

struct Descriptor {
  uint64_t magic, call, count, digest;
  uint32_t collective;
  uint8_t dtype, op, pad8[2];
  uint64_t pad[3];
};
static_assert(sizeof(Descriptor) == 64, "descriptor must fill one cache line");

// Per communicator: the registered workspace, channels and counters every plan shares.
struct Workspace {
  Workspace(Communicator& comm);
  Communicator& comm;
  const void* health_key;  // identifies the communicator while this workspace lives
  int rank, size;
  size_t header_bytes, slot_bytes, piece_bytes;
  RegisteredMemory mine;
  std::vector<RegisteredMemory> all;
  std::vector<std::shared_ptr<Channel>> data;  // by peer (null for this rank)
  std::vector<Semaphore> credit;               // by peer
  std::vector<Descriptor> outgoing;            // descriptors in flight (outlive TCP sends)
  std::vector<char> input_copy;                // in place with a plan that is not in-place safe
  uint64_t calls = 0, iterations = 0;

  size_t descriptor_offset(int writer, uint64_t call) const { return (static_cast<size_t>(writer) * 2 + call % 2) * 64; }
  size_t slot_offset(uint64_t iteration) const { return header_bytes + (iteration % 2) * slot_bytes; }
};

// The workspace of `comm`, registered on first use (collective).
std::shared_ptr<Workspace> workspace_for(Communicator& comm);

}  // namespace mscomm::executor
