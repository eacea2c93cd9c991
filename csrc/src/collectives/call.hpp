// One collective call in flight: its communicator, scratch, time limit and descriptor, and the
// steps every algorithm shares (argument agreement, same-host sync).
#pragma once
#include <functional>
#include <string>

#include "context.hpp"
#include "mscomm/communicator.hpp"

namespace mscomm {

struct Call {
  Communicator& comm;
  CollectiveContext& ctx;
  double timeout;
  CallDescriptor desc;
  int rank, size;
  size_t es;  // element size
  int entry = 0;  // where publish_descriptor() put this call's descriptor
  bool stream = false;
  const void* own_input = nullptr;  // this rank's input, as direct_begin() announced it  // the output is large (MSCOMM_STREAM_MIN_BYTES): copy_out uses streaming stores

  // Sets `stream` from the size of the call's output on this rank.
  void output_bytes(size_t bytes) { stream = bytes >= ctx.tuning.stream_min_bytes; }
  // Copies into the call's output (memcpy, or streaming stores when `stream`).
  void copy_out(void* dst, const void* src, size_t bytes) const;

  // Compares a peer's descriptor with `expected`; on disagreement every rank fails with a message
  // showing both sides.
  void check(int peer, const char* raw, const CallDescriptor& expected) const;
  // Every same-host rank signals every other and waits for all of them.
  void sync_local() const;
  // Writes this call's descriptor where same-host peers read it, and checks theirs (after a sync).
  // The entry alternates with the shm phase, not the call number: calls between two shm phases
  // may not sync every pair (gather), but a phase is reused only after every peer's next sync.
  void publish_descriptor();
  void check_local_descriptors() const;

  // Direct path (one host; registered buffers, or single-copy reads where the kernel allows
  // them): peers read each other's buffers with no staging copy. direct_begin() announces this
  // rank's buffers (null: none) and syncs; read_peer copies `bytes` from `offset` of a peer's
  // input (which = 0) or output (1) into dst; peer_view returns a pointer to them: into the
  // peer's registered buffer, or `tmp` holding a copy. direct_end() syncs so that nobody leaves
  // while a peer still reads its buffers.
  void direct_begin(const void* in, size_t in_bytes, const void* out, size_t out_bytes);
  void read_peer(int peer, int which, size_t offset, size_t bytes, void* dst) const;
  const char* peer_view(int peer, int which, size_t offset, size_t bytes, char* tmp) const;
  void direct_end() const { sync_local(); }
  // dst = op over every rank (in rank order) of `bytes` at `offset` of its input, chunk by chunk;
  // the peers' chunks are read into this rank's idle staging slot (or used where registered).
  void reduce_peers(size_t offset, size_t bytes, char* dst, ReduceOp op) const;
};

// Copies `bytes` at `address` in process `pid` (rank `peer`) into dst (process_vm_readv).
void cma_read(int pid, uint64_t address, void* dst, size_t bytes, int peer);
BufferRef find_registered(const CollectiveContext& ctx, const void* ptr, size_t bytes);
// How the direct path would read the peers' buffers of a call: not at all (several hosts, or
// neither single-copy reads nor registered buffers), through the registrations' mappings (both
// buffers, null meaning none, registered), or with single-copy reads (process_vm_readv; where a
// buffer is registered, through its mapping). Registration is one rank's view: ranks that pass
// registered buffers while others do not may choose differently and then fail their first sync
// with "arguments differ".
enum class DirectReads : uint8_t { None, Registered, SingleCopy };
DirectReads direct_reads(Communicator& comm, const void* in, size_t in_bytes, const void* out, size_t out_bytes);
// When the automatic choice takes the direct path over single-copy reads, which copy large data
// at about half the speed of a user-space copy with streaming stores (docs/algorithms.md has the
// measurements): Always (alltoall, reduce_scatter: one copy per byte either way);
// UnlessOversubscribed (in-place allreduce: not when the host's ranks outnumber its cores);
// Bounded (out-of-place allreduce, allgather: also only up to MSCOMM_CMA_MAX_BYTES); Never
// (broadcast). Elsewhere the staged path measured faster.
enum class SingleCopyUse : uint8_t { Always, UnlessOversubscribed, Bounded, Never };
// Whether the automatic choice is the direct path (from MSCOMM_DIRECT_MIN_BYTES bytes per rank).
bool direct_automatic(Communicator& comm, DirectReads reads, size_t message_bytes, SingleCopyUse use);
// The algorithm name a call asks for: `requested` (the call's argument), else the collective's
// MSCOMM_<NAME>_ALGO; empty or "auto" leave it to the automatic choice (selection.hpp).
const std::string& requested_algorithm(Communicator& comm, const char* collective, const std::string& requested);

// Validates the common arguments, then runs `algorithm` on a fresh Call. Any error inside leaves
// the communicator unusable (the ranks no longer agree on semaphore counts).
void run_collective(Communicator& comm, Collective what, size_t count, DataType dtype, ReduceOp op, int root,
                    double timeout_s, Algo algorithm, const std::function<void(Call&)>& algorithm_fn);

// Checks that [a, a+na) and [b, b+nb) are the same buffer or do not overlap.
void check_no_overlap(const char* what, const void* a, size_t na, const void* b, size_t nb);
void check_root(const char* what, int root, int size);

}  // namespace mscomm
