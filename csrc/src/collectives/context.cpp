#include "context.hpp"

#include <map>

#include "mscomm/env.hpp"

namespace mscomm {

const char* collective_name(uint32_t c) {
  static const char* names[] = {"?", "allreduce", "reduce", "broadcast", "allgather", "reduce_scatter",
                                "alltoall", "alltoallv", "gather", "scatter", "send/recv", "barrier"};
  return c < sizeof(names) / sizeof(names[0]) ? names[c] : "?";
}

Tuning::Tuning()
    : allreduce_algorithm(env_string("MSCOMM_ALLREDUCE_ALGO")),
      oneshot_max_bytes(static_cast<size_t>(env_int("MSCOMM_ONESHOT_MAX_BYTES"))),
      direct_min_bytes(static_cast<size_t>(env_int("MSCOMM_DIRECT_MIN_BYTES"))),
      shm_slot_bytes(static_cast<size_t>(env_int("MSCOMM_SHM_SLOT_BYTES")) & ~size_t{63}),
      chunk_bytes(static_cast<size_t>(env_int("MSCOMM_TCP_SLOT_BYTES")) & ~size_t{63}),
      check_args(env_bool("MSCOMM_CHECK_ARGS")) {
  MSCOMM_CHECK_ARG(shm_slot_bytes >= 4096 && chunk_bytes >= 4096,
                   "MSCOMM_SHM_SLOT_BYTES and MSCOMM_TCP_SLOT_BYTES must be at least 4096");
}

HostLayout::HostLayout(const Communicator& comm) : all(comm.size()), same_index(comm.size()) {
  // Hosts in order of their first rank; ranks of a host in rank order.
  std::vector<std::vector<int>> hosts;
  std::map<std::string, size_t> index;
  for (int r = 0; r < comm.size(); ++r) {
    all[r] = r;
    auto [it, fresh] = index.emplace(comm.host_id_of(r), hosts.size());
    if (fresh) hosts.emplace_back();
    hosts[it->second].push_back(r);
  }
  for (const auto& h : hosts) uniform = uniform && h.size() == hosts[0].size();
  if (!uniform) return;
  for (const auto& h : hosts)
    for (size_t i = 0; i < h.size(); ++i)
      for (const auto& other : hosts) same_index[h[i]].push_back(other[i]);
}

CollectiveContext::CollectiveContext(Communicator& comm)
    : layout(comm),
      size(comm.size()),
      descriptor_bytes(static_cast<size_t>(comm.size()) * 4 * sizeof(CallDescriptor)),
      shm_slot_bytes(tuning.shm_slot_bytes),
      chunk_bytes(tuning.chunk_bytes),
      sent(comm.size()), received(comm.size()), sends(comm.size()), recvs(comm.size()), outgoing(comm.size()) {}

void CollectiveContext::connect(Communicator& comm) {
  if (scratch.valid()) return;
  // Every rank must compute the same offsets into every other rank's scratch: one layout for all.
  scratch = comm.register_memory(descriptor_bytes + 2 * shm_slot_bytes + static_cast<size_t>(size) * 2 * chunk_bytes);
  peer_scratch = comm.exchange_memory(scratch);
  data.resize(comm.size());
  credit.resize(comm.size());
  for (int p = 0; p < comm.size(); ++p) {
    if (p == comm.rank()) continue;
    data[p] = comm.channel(p, scratch, peer_scratch[p]);
    credit[p] = comm.channel(p, scratch, peer_scratch[p]);
  }
}

size_t CollectiveContext::descriptor_offset(int writer, int entry) const {
  return (static_cast<size_t>(writer) * 4 + static_cast<size_t>(entry)) * sizeof(CallDescriptor);
}

char* CollectiveContext::descriptor(int owner, int writer, int entry) const {
  return static_cast<char*>(peer_scratch[owner].data()) + descriptor_offset(writer, entry);
}

char* CollectiveContext::shm_slot(int rank, uint64_t phase) const {
  return static_cast<char*>(peer_scratch[rank].data()) + descriptor_bytes + (phase % 2) * shm_slot_bytes;
}

size_t CollectiveContext::p2p_offset(int sender, uint64_t chunk) const {
  return descriptor_bytes + 2 * shm_slot_bytes + (static_cast<size_t>(sender) * 2 + chunk % 2) * chunk_bytes;
}

char* CollectiveContext::p2p_slot(int sender, uint64_t chunk) const {
  return static_cast<char*>(scratch.data()) + p2p_offset(sender, chunk);
}

}  // namespace mscomm
