// One rank of `mscomm-bench --compare oneccl`: times oneCCL's CPU collectives with the protocol of
// every other mscomm-bench worker (warm-up calls, then per repetition: barrier, `iters` calls, the
// slowest rank's mean per call). The Python side (mscomm/bench/peers/oneccl.py) turns the raw
// repetition times into report rows, so the row format is the one all workers share.
//
// Launched by Intel MPI's mpiexec (PMI_RANK / PMI_SIZE) with CCL_ATL_TRANSPORT=mpi (the default
// transport, OFI, finds no libfabric provider here). oneCCL leaves the exchange of its
// key-value-store address to the caller: rank 0 writes it to --kvs FILE, the others read it.
//
// Output (rank 0, --out FILE), one line per size:
//   BYTES COUNT T1 ... TREPS      (seconds per call, slowest rank, one per repetition)
//   BYTES error MESSAGE           (oneCCL refused the call)
//
// Build: g++ -O2 -std=c++17 -I$VENV/include oneccl_bench.cpp -L$VENV/lib -lccl -Wl,-rpath,$VENV/lib

#include <oneapi/ccl.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Options {
  std::string collective = "allreduce", dtype = "float32", op = "sum", kvs_file, out;
  std::vector<long> sizes, iters;
  int warmup = 3, reps = 5;
};

std::vector<long> parse_list(const std::string& text) {
  std::vector<long> v;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');) v.push_back(std::stol(item));
  return v;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string key = argv[i], val = argv[i + 1];
    if (key == "--collective") o.collective = val;
    else if (key == "--sizes") o.sizes = parse_list(val);
    else if (key == "--iters") o.iters = parse_list(val);
    else if (key == "--dtype") o.dtype = val;
    else if (key == "--op") o.op = val;
    else if (key == "--warmup") o.warmup = std::stoi(val);
    else if (key == "--reps") o.reps = std::stoi(val);
    else if (key == "--kvs") o.kvs_file = val;
    else if (key == "--out") o.out = val;
    else throw std::invalid_argument("unknown option " + key);
  }
  if (o.sizes.empty() || o.iters.size() != o.sizes.size() || o.kvs_file.empty() || o.out.empty())
    throw std::invalid_argument("need --sizes, --iters (one per size), --kvs and --out");
  return o;
}

int env_int(const char* name) {
  const char* v = std::getenv(name);
  if (!v) throw std::runtime_error(std::string(name) + " is not set: launch with Intel MPI's mpiexec");
  return std::atoi(v);
}

std::shared_ptr<ccl::kvs> exchange_kvs(int rank, const std::string& path) {
  if (rank == 0) {
    auto kvs = ccl::create_main_kvs();
    auto addr = kvs->get_address();
    std::string tmp = path + ".tmp";
    std::ofstream(tmp, std::ios::binary).write(addr.data(), addr.size());
    std::rename(tmp.c_str(), path.c_str());  // readers never see a partial address
    return kvs;
  }
  ccl::kvs::address_type addr;
  for (;;) {
    std::ifstream f(path, std::ios::binary);
    if (f && f.read(addr.data(), addr.size())) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return ccl::create_kvs(addr);
}

const std::map<std::string, std::pair<ccl::datatype, size_t>> kDtypes = {
    {"int8", {ccl::datatype::int8, 1}},       {"uint8", {ccl::datatype::uint8, 1}},
    {"int32", {ccl::datatype::int32, 4}},     {"int64", {ccl::datatype::int64, 8}},
    {"float16", {ccl::datatype::float16, 2}}, {"bfloat16", {ccl::datatype::bfloat16, 2}},
    {"float32", {ccl::datatype::float32, 4}}, {"float64", {ccl::datatype::float64, 8}},
};
const std::map<std::string, ccl::reduction> kOps = {
    {"sum", ccl::reduction::sum}, {"prod", ccl::reduction::prod}, {"min", ccl::reduction::min},
    {"max", ccl::reduction::max}, {"avg", ccl::reduction::avg},
};

// Element counts as in mscomm/bench/specs.py: `per` elements per rank; allgather's size is the
// whole output, reduce_scatter's and alltoall's the whole input.
struct Call {
  size_t input_count;
  std::function<void()> run;
};

Call make_call(const Options& o, size_t nbytes, int n, const ccl::communicator& comm,
               std::vector<char>& a, std::vector<char>& b) {
  auto [dt, es] = kDtypes.at(o.dtype);
  auto red = kOps.at(o.op);
  const std::string& c = o.collective;
  bool split = c == "allgather" || c == "reduce_scatter" || c == "alltoall";
  size_t per = std::max<size_t>(1, split ? nbytes / es / n : nbytes / es);
  a.assign((c == "reduce_scatter" || c == "alltoall" ? per * n : per) * es, 0);
  b.assign((c == "allgather" || c == "alltoall" ? per * n : per) * es, 0);
  char* x = a.data();
  char* y = b.data();
  if (c == "allreduce")  // in place, like every other peer
    return {per, [=, &comm] { ccl::allreduce(x, x, per, dt, red, comm).wait(); }};
  if (c == "reduce")
    return {per, [=, &comm] { ccl::reduce(x, y, per, dt, red, 0, comm).wait(); }};
  if (c == "broadcast")
    return {per, [=, &comm] { ccl::broadcast(x, per, dt, 0, comm).wait(); }};
  if (c == "allgather")
    return {per, [=, &comm] { ccl::allgather(x, y, per, dt, comm).wait(); }};
  if (c == "reduce_scatter")
    return {per * n, [=, &comm] { ccl::reduce_scatter(x, y, per, dt, red, comm).wait(); }};
  if (c == "alltoall")
    return {per * n, [=, &comm] { ccl::alltoall(x, y, per, dt, comm).wait(); }};
  if (c == "barrier")
    return {0, [&comm] { ccl::barrier(comm).wait(); }};
  throw std::invalid_argument("oneCCL has no " + c + " in this benchmark");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Options o = parse(argc, argv);
    ccl::init();
    int rank = env_int("PMI_RANK"), size = env_int("PMI_SIZE");
    auto comm = ccl::create_communicator(size, rank, exchange_kvs(rank, o.kvs_file));
    double slowest = 0;
    auto max_over_ranks = [&](double v) {
      slowest = v;
      ccl::allreduce(&slowest, &slowest, 1, ccl::datatype::float64, ccl::reduction::max, comm).wait();
      return slowest;
    };
    std::ostringstream report;
    report.precision(9);
    std::vector<char> a, b;
    for (size_t i = 0; i < o.sizes.size(); ++i) {
      size_t nbytes = o.sizes[i];
      try {
        Call call = make_call(o, nbytes, size, comm, a, b);
        for (int w = 0; w < o.warmup; ++w) call.run();
        report << nbytes << ' ' << call.input_count;
        for (int r = 0; r < o.reps; ++r) {
          ccl::barrier(comm).wait();
          auto t0 = std::chrono::steady_clock::now();
          for (long k = 0; k < o.iters[i]; ++k) call.run();
          std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
          report << ' ' << max_over_ranks(dt.count() / o.iters[i]);
        }
        report << '\n';
      } catch (const std::exception& e) {  // ccl::exception and unsupported combinations
        std::string msg = e.what();
        msg = msg.substr(0, msg.find('\n'));
        report << nbytes << " error " << msg << '\n';
      }
    }
    if (rank == 0) std::ofstream(o.out) << report.str();
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "oneccl_bench: %s\n", e.what());
    return 1;
  }
}
