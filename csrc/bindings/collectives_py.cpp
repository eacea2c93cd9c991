// Collectives on raw pointers; mscomm/collectives.py validates the arrays and calls these with
// the GIL released.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "mscomm/collectives.hpp"

namespace py = pybind11;
using namespace mscomm;

namespace {
CollectiveOptions options(const std::string& dtype, const std::string& op, int root, double timeout,
                          const std::string& algorithm) {
  return CollectiveOptions{parse_dtype(dtype), parse_op(op), root, timeout, algorithm};
}
const void* in_ptr(uintptr_t p) { return reinterpret_cast<const void*>(p); }
void* out_ptr(uintptr_t p) { return reinterpret_cast<void*>(p); }
}  // namespace

void register_collectives(py::module_& m) {
  using Fn = void (*)(Communicator&, const void*, void*, size_t, const CollectiveOptions&);
  const std::pair<const char*, Fn> in_out[] = {
      {"allreduce", &allreduce}, {"reduce", &reduce}, {"allgather", &allgather}, {"reduce_scatter", &reduce_scatter},
      {"alltoall", &alltoall},   {"gather", &gather}, {"scatter", &scatter},
  };
  for (const auto& [name, fn] : in_out) {
    m.def(name, [fn = fn](Communicator& comm, uintptr_t input, uintptr_t output, size_t count, const std::string& dtype,
                          const std::string& op, int root, double timeout, const std::string& algorithm) {
      CollectiveOptions opts = options(dtype, op, root, timeout, algorithm);
      py::gil_scoped_release nogil;
      fn(comm, in_ptr(input), out_ptr(output), count, opts);
    }, py::arg("comm"), py::arg("input"), py::arg("output"), py::arg("count"), py::arg("dtype"), py::arg("op") = "sum",
       py::arg("root") = 0, py::arg("timeout") = -1.0, py::arg("algorithm") = "");
  }
  m.def("alltoallv", [](Communicator& comm, uintptr_t input, std::vector<size_t> send_counts, uintptr_t output,
                        std::vector<size_t> recv_counts, const std::string& dtype, double timeout,
                        const std::string& algorithm) {
    CollectiveOptions opts = options(dtype, "sum", 0, timeout, algorithm);
    py::gil_scoped_release nogil;
    alltoallv(comm, in_ptr(input), send_counts, out_ptr(output), recv_counts, opts);
  }, py::arg("comm"), py::arg("input"), py::arg("send_counts"), py::arg("output"), py::arg("recv_counts"),
     py::arg("dtype"), py::arg("timeout") = -1.0, py::arg("algorithm") = "");
  m.def("broadcast", [](Communicator& comm, uintptr_t buffer, size_t count, const std::string& dtype, int root,
                        double timeout, const std::string& algorithm) {
    CollectiveOptions opts = options(dtype, "sum", root, timeout, algorithm);
    py::gil_scoped_release nogil;
    broadcast(comm, out_ptr(buffer), count, opts);
  }, py::arg("comm"), py::arg("buffer"), py::arg("count"), py::arg("dtype"), py::arg("root") = 0,
     py::arg("timeout") = -1.0, py::arg("algorithm") = "");
  m.def("send", [](Communicator& comm, uintptr_t buffer, size_t count, const std::string& dtype, int peer, int tag,
                   double timeout) {
    CollectiveOptions opts = options(dtype, "sum", 0, timeout, "");
    py::gil_scoped_release nogil;
    send(comm, in_ptr(buffer), count, peer, tag, opts);
  }, py::arg("comm"), py::arg("buffer"), py::arg("count"), py::arg("dtype"), py::arg("peer"), py::arg("tag") = 0,
     py::arg("timeout") = -1.0);
  m.def("recv", [](Communicator& comm, uintptr_t buffer, size_t count, const std::string& dtype, int peer, int tag,
                   double timeout) {
    CollectiveOptions opts = options(dtype, "sum", 0, timeout, "");
    py::gil_scoped_release nogil;
    recv(comm, out_ptr(buffer), count, peer, tag, opts);
  }, py::arg("comm"), py::arg("buffer"), py::arg("count"), py::arg("dtype"), py::arg("peer"), py::arg("tag") = 0,
     py::arg("timeout") = -1.0);
  m.def("barrier", [](Communicator& comm, double timeout, const std::string& algorithm) {
    CollectiveOptions opts;
    opts.timeout_s = timeout;
    opts.algorithm = algorithm;
    py::gil_scoped_release nogil;
    barrier(comm, opts);
  }, py::arg("comm"), py::arg("timeout") = -1.0, py::arg("algorithm") = "");
  // register_buffer keeps the GIL: moving the pages must not race other Python threads' writes.
  m.def("register_buffer", [](Communicator& comm, uintptr_t ptr, size_t nbytes, double timeout) {
    return register_buffer(comm, out_ptr(ptr), nbytes, timeout);
  }, py::arg("comm"), py::arg("ptr"), py::arg("nbytes"), py::arg("timeout") = -1.0);
  m.def("single_copy_reads", [](Communicator& comm) {
    py::gil_scoped_release nogil;
    return single_copy_reads(comm);
  }, py::arg("comm"), "Collective on first use: whether same-host ranks read each other's buffers directly.");
  m.def("deregister_buffer", &deregister_buffer, py::arg("comm"), py::arg("handle"));
  m.def("algorithms", [](Communicator& comm, const std::string& collective, size_t nbytes, uintptr_t input,
                         size_t input_bytes, uintptr_t output, size_t output_bytes, bool in_place,
                         const std::string& algorithm) {
    std::vector<AlgorithmInfo> rows;
    {
      py::gil_scoped_release nogil;  // collective on first use
      rows = algorithms(comm, collective, nbytes, in_ptr(input), input_bytes, out_ptr(output), output_bytes, in_place,
                        algorithm);
    }
    py::list out;
    for (const AlgorithmInfo& r : rows)
      out.append(py::dict(py::arg("name") = r.name, py::arg("summary") = r.summary, py::arg("runs") = r.runs,
                          py::arg("reason") = r.reason, py::arg("chosen") = r.chosen,
                          py::arg("automatic") = r.automatic));
    return out;
  }, py::arg("comm"), py::arg("collective"), py::arg("nbytes"), py::arg("input") = 0, py::arg("input_bytes") = 0,
     py::arg("output") = 0, py::arg("output_bytes") = 0, py::arg("in_place") = false, py::arg("algorithm") = "");
  m.def("algorithm_table", &algorithm_table, py::arg("collective"));
}
