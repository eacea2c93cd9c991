#include "context.hpp"

#include <sys/prctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <fstream>
#include <map>

#include "mscomm/env.hpp"

namespace mscomm {

const char* collective_name(uint32_t c) {
  static const char* names[] = {"?", "allreduce", "reduce", "broadcast", "allgather", "reduce_scatter",
                                "alltoall", "alltoallv", "gather", "scatter", "send/recv", "barrier"};
  return c < sizeof(names) / sizeof(names[0]) ? names[c] : "?";
}

Tuning::Tuning()
    : oneshot_max_bytes(static_cast<size_t>(env_int("MSCOMM_ONESHOT_MAX_BYTES"))),
      direct_min_bytes(static_cast<size_t>(env_int("MSCOMM_DIRECT_MIN_BYTES"))),
      cma_max_bytes(static_cast<size_t>(env_int("MSCOMM_CMA_MAX_BYTES"))),
      shm_slot_bytes(static_cast<size_t>(env_int("MSCOMM_SHM_SLOT_BYTES")) & ~size_t{63}),
      chunk_bytes(static_cast<size_t>(env_int("MSCOMM_TCP_SLOT_BYTES")) & ~size_t{63}),
      stream_min_bytes(static_cast<size_t>(env_int("MSCOMM_STREAM_MIN_BYTES"))),
      check_args(env_bool("MSCOMM_CHECK_ARGS")),
      cma(env_bool("MSCOMM_CMA")) {
  for (const char* name : {"allreduce", "reduce", "broadcast", "allgather", "reduce_scatter", "alltoall", "alltoallv",
                           "gather", "scatter", "barrier"}) {
    std::string var = "MSCOMM_";
    for (const char* p = name; *p; ++p) var += static_cast<char>(std::toupper(static_cast<unsigned char>(*p)));
    algorithm[name] = env_string((var + "_ALGO").c_str());
  }
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
  if (tuning.cma && comm.num_hosts() == 1 && comm.size() > 1) probe_cma(comm);
}

static int read_file_int(const char* path) {
  std::ifstream f(path);
  int v = -1;
  f >> v;
  return f ? v : -1;
}

// Single-copy reads need the kernel to let ranks read each other's memory: same user, and under
// Yama's ptrace_scope 1 a PR_SET_PTRACER opt-in. Every rank tries to read a word from every
// other; the path is used only if all of them succeed (so every rank chooses alike).
void CollectiveContext::probe_cma(Communicator& comm) {
  if (read_file_int("/proc/sys/kernel/yama/ptrace_scope") == 1) prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
  struct Probe {
    int64_t pid;
    uint64_t address, value;
  };
  static const uint64_t word = 0x6d73636f6d6d2121ULL;  // "mscomm!!"
  Probe mine{getpid(), reinterpret_cast<uintptr_t>(&word), word};
  auto blobs = comm.bootstrap().allgather(std::string(reinterpret_cast<const char*>(&mine), sizeof(mine)), "cma probe",
                                          comm.timeout());
  pids.assign(comm.size(), 0);
  bool ok = true;
  for (int r = 0; r < comm.size(); ++r) {
    Probe p;
    if (blobs[r].size() != sizeof(p)) throw InternalError("cma probe: malformed reply from rank " + std::to_string(r));
    std::memcpy(&p, blobs[r].data(), sizeof(p));
    pids[r] = static_cast<int>(p.pid);
    if (r == comm.rank()) continue;
    uint64_t got = 0;
    iovec local{&got, sizeof(got)}, remote{reinterpret_cast<void*>(p.address), sizeof(got)};
    ok = ok && process_vm_readv(pids[r], &local, 1, &remote, 1, 0) == sizeof(got) && got == p.value;
  }
  auto votes = comm.bootstrap().allgather(ok ? "1" : "0", "cma probe (votes)", comm.timeout());
  cma = std::all_of(votes.begin(), votes.end(), [](const std::string& v) { return v == "1"; });
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
