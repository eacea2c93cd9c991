// Collectives on raw pointers; mscomm/collectives.py validates the arrays and calls these.
#include <pybind11/pybind11.h>

#include "mscomm/collectives.hpp"

namespace py = pybind11;
using namespace mscomm;

void register_collectives(py::module_& m) {
  m.def("allreduce", [](Communicator& comm, uintptr_t input, uintptr_t output, size_t count, const std::string& dtype,
                        const std::string& op, double timeout, const std::string& algorithm) {
    AllreduceOptions opts{parse_dtype(dtype), parse_op(op), timeout, algorithm};
    py::gil_scoped_release nogil;
    allreduce(comm, reinterpret_cast<const void*>(input), reinterpret_cast<void*>(output), count, opts);
  }, py::arg("comm"), py::arg("input"), py::arg("output"), py::arg("count"), py::arg("dtype"), py::arg("op"),
     py::arg("timeout") = -1.0, py::arg("algorithm") = "");
  m.def("allreduce_algorithm", &allreduce_algorithm, py::arg("comm"), py::arg("nbytes"), py::arg("algorithm") = "");
}
