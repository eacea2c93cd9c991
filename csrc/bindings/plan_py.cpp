// Plans and the executor: mscomm/plans.py reads and validates plan files and calls these.
#include <pybind11/pybind11.h>

#include "mscomm/plan.hpp"

namespace py = pybind11;
using namespace mscomm;

void register_plan(py::module_& m) {
  py::class_<Plan, std::shared_ptr<Plan>>(m, "Plan", "A plan loaded (checked and compiled) for one communicator.")
      .def_property_readonly("name", &Plan::name)
      .def_property_readonly("collective", &Plan::collective)
      .def_property_readonly("num_ranks", &Plan::num_ranks)
      .def_property_readonly("k", &Plan::k)
      .def_property_readonly("digest", &Plan::digest)
      .def_property_readonly("steps", &Plan::steps)
      .def_property_readonly("in_place_safe", &Plan::in_place_safe)
      .def("run", [](Plan& p, uintptr_t input, uintptr_t output, size_t count, const std::string& dtype,
                     const std::string& op, double timeout) {
        const DataType t = parse_dtype(dtype);
        const ReduceOp o = parse_op(op);
        py::gil_scoped_release nogil;
        p.run(reinterpret_cast<const void*>(input), reinterpret_cast<void*>(output), count, t, o, timeout);
      }, py::arg("input"), py::arg("output"), py::arg("count"), py::arg("dtype"), py::arg("op") = "sum",
         py::arg("timeout") = -1.0);
  // The plan keeps its communicator alive (it runs over the communicator's channels).
  m.def("load_plan", [](Communicator& comm, const std::string& json, double timeout) {
    py::gil_scoped_release nogil;
    return Plan::load(comm, json, timeout);
  }, py::arg("comm"), py::arg("json"), py::arg("timeout") = -1.0, py::keep_alive<0, 1>(),
     "Collective: checks the plan JSON on every rank and compiles it for this communicator.");
  m.def("offer_plan", &offer_plan, py::arg("comm"), py::arg("plan"), py::arg("min_bytes") = 0,
        py::arg("max_bytes") = 0, "Adds the plan as a row 'plan:<name>' of its collective's selection table.");
  m.def("check_plan", &Plan::check, py::arg("json"), py::arg("rank"), py::arg("size"),
        "Local: the loader's checks for one rank, without a communicator (raises InvalidArgument).");
}
