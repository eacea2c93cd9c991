// Python binding of the persistent max-flow network used by mscomm.forestcoll.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "mscomm/flow_network.hpp"

namespace py = pybind11;
using mscomm::graph::FlowNetwork;

void register_graph(py::module_& m) {
  py::class_<FlowNetwork>(m, "FlowNetwork",
                          "Directed int64 flow network updated in place; Dinic max-flow with a limit.")
      .def(py::init<int>(), py::arg("num_nodes") = 0)
      .def_property_readonly("num_nodes", &FlowNetwork::num_nodes)
      .def_property_readonly("num_arcs", &FlowNetwork::num_arcs)
      .def_readonly_static("INFINITY", &FlowNetwork::kInfinity)
      .def("add_node", &FlowNetwork::add_node)
      .def("add_arc", &FlowNetwork::add_arc, py::arg("u"), py::arg("v"), py::arg("cap"))
      .def("add_arcs", [](FlowNetwork& net, py::array_t<int64_t> src, py::array_t<int64_t> dst,
                          py::array_t<int64_t> cap) {
        auto s = src.unchecked<1>(), d = dst.unchecked<1>(), c = cap.unchecked<1>();
        if (s.shape(0) != d.shape(0) || s.shape(0) != c.shape(0))
          throw std::invalid_argument("add_arcs: arrays differ in length");
        int first = net.num_arcs();
        for (py::ssize_t i = 0; i < s.shape(0); ++i)
          net.add_arc(static_cast<int>(s(i)), static_cast<int>(d(i)), c(i));
        return first;
      }, "Add arcs from three equal-length arrays; returns the id of the first.")
      .def("set_capacity", &FlowNetwork::set_capacity, py::arg("arc"), py::arg("cap"))
      .def("add_capacity", &FlowNetwork::add_capacity, py::arg("arc"), py::arg("delta"))
      .def("capacity", &FlowNetwork::capacity, py::arg("arc"))
      .def("max_flow", &FlowNetwork::max_flow, py::arg("s"), py::arg("t"),
           py::arg("limit") = FlowNetwork::kInfinity, py::call_guard<py::gil_scoped_release>())
      .def("source_side", [](const FlowNetwork& net) {
        auto side = net.source_side();
        return py::array_t<uint8_t>(static_cast<py::ssize_t>(side.size()), side.data());
      })
      .def("arc_flows", [](const FlowNetwork& net) {
        auto f = net.arc_flows();
        return py::array_t<int64_t>(static_cast<py::ssize_t>(f.size()), f.data());
      })
      .def("first_short_sink", &FlowNetwork::first_short_sink, py::arg("s"), py::arg("sinks"),
           py::arg("need"), py::call_guard<py::gil_scoped_release>());
}
