#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "mscomm/bootstrap.hpp"

namespace py = pybind11;
using mscomm::Bootstrap;

void register_bootstrap(py::module_& m) {
  m.def("create_unique_id", [](const std::string& host, int port) { return mscomm::create_unique_id(host, port).str(); },
        py::arg("host") = "127.0.0.1", py::arg("port") = 0,
        "A fresh unique id (rank 0's address and a random secret); the port is bound now and kept for rank 0.");
  py::class_<Bootstrap>(m, "Bootstrap")
      .def_property_readonly("rank", &Bootstrap::rank)
      .def_property_readonly("size", &Bootstrap::size)
      .def_property_readonly("local_host", &Bootstrap::local_host)
      .def("allgather", [](Bootstrap& b, const py::bytes& mine, double timeout) {
        std::string s = mine;
        std::vector<std::string> out;
        {
          py::gil_scoped_release nogil;
          out = b.allgather(s, "bootstrap allgather", timeout);
        }
        py::list l;
        for (auto& x : out) l.append(py::bytes(x));
        return l;
      }, py::arg("data"), py::arg("timeout"))
      .def("barrier", [](Bootstrap& b, double timeout) { b.barrier("bootstrap barrier", timeout); },
           py::arg("timeout"), py::call_guard<py::gil_scoped_release>())
      .def("send", [](Bootstrap& b, int peer, uint64_t tag, const py::bytes& data) {
        std::string s = data;
        py::gil_scoped_release nogil;
        b.send(peer, tag, s);
      }, py::arg("peer"), py::arg("tag"), py::arg("data"))
      .def("recv", [](Bootstrap& b, int peer, uint64_t tag, double timeout) {
        std::string s;
        {
          py::gil_scoped_release nogil;
          s = b.recv(peer, tag, timeout);
        }
        return py::bytes(s);
      }, py::arg("peer"), py::arg("tag"), py::arg("timeout"))
      .def("check", &Bootstrap::check);
}
