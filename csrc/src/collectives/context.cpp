#include "context.hpp"

#include "mscomm/env.hpp"

namespace mscomm {

Tuning::Tuning()
    : allreduce_algorithm(env_string("MSCOMM_ALLREDUCE_ALGO")),
      oneshot_max_bytes(static_cast<size_t>(env_int("MSCOMM_ONESHOT_MAX_BYTES"))),
      shm_slot_bytes(static_cast<size_t>(env_int("MSCOMM_SHM_SLOT_BYTES")) & ~size_t{63}),
      ring_slot_bytes(static_cast<size_t>(env_int("MSCOMM_TCP_SLOT_BYTES")) & ~size_t{63}) {
  MSCOMM_CHECK_ARG(shm_slot_bytes >= 4096 && ring_slot_bytes >= 4096,
                   "MSCOMM_SHM_SLOT_BYTES and MSCOMM_TCP_SLOT_BYTES must be at least 4096");
}

CollectiveContext::CollectiveContext(Communicator& comm)
    : shm_slot_bytes(tuning.shm_slot_bytes), ring_slot_bytes(tuning.ring_slot_bytes), all_local(comm.num_hosts() == 1) {
  scratch = comm.register_memory(kDescriptorBytes + 2 * shm_slot_bytes + 2 * ring_slot_bytes);
  peer_scratch = comm.exchange_memory(scratch);
  data.resize(comm.size());
  credit.resize(comm.size());
  for (int p = 0; p < comm.size(); ++p) {
    if (p == comm.rank()) continue;
    data[p] = comm.channel(p, scratch, peer_scratch[p]);
    credit[p] = comm.channel(p, scratch, peer_scratch[p]);
  }
}

char* CollectiveContext::descriptor(int rank, uint64_t call) const {
  return static_cast<char*>(peer_scratch[rank].data()) + (call % 2) * sizeof(CallDescriptor);
}

char* CollectiveContext::shm_slot(int rank, uint64_t phase) const {
  return static_cast<char*>(peer_scratch[rank].data()) + kDescriptorBytes + (phase % 2) * shm_slot_bytes;
}

size_t CollectiveContext::ring_slot_offset(uint64_t step) const {
  return kDescriptorBytes + 2 * shm_slot_bytes + (step % 2) * ring_slot_bytes;
}

char* CollectiveContext::ring_slot(uint64_t step) const {
  return static_cast<char*>(scratch.data()) + ring_slot_offset(step);
}

}  // namespace mscomm
