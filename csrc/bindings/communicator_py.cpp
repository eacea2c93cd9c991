#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "mscomm/communicator.hpp"

namespace py = pybind11;
using namespace mscomm;

void register_communicator(py::module_& m) {
  py::class_<Communicator, std::shared_ptr<Communicator>>(m, "Communicator")
      .def(py::init<int, int, const std::string&, double>(), py::arg("rank"), py::arg("size"), py::arg("unique_id"),
           py::arg("timeout") = -1.0, py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("rank", &Communicator::rank)
      .def_property_readonly("size", &Communicator::size)
      .def_property("timeout", &Communicator::timeout, &Communicator::set_timeout)
      .def_property_readonly("host_id", &Communicator::host_id)
      .def_property_readonly("local_ranks", &Communicator::local_ranks)
      .def_property_readonly("num_hosts", &Communicator::num_hosts)
      .def_property_readonly("closed", &Communicator::closed)
      .def("same_host", &Communicator::same_host, py::arg("peer"))
      .def("transport_to", &Communicator::transport_to, py::arg("peer"))
      .def_property_readonly("bootstrap", &Communicator::bootstrap, py::return_value_policy::reference_internal)
      .def("register_memory", &Communicator::register_memory, py::arg("size"))
      .def("exchange_memory", &Communicator::exchange_memory, py::arg("memory"),
           py::call_guard<py::gil_scoped_release>())
      .def("make_semaphore", &Communicator::make_semaphore, py::arg("peer"))
      .def("memory_channel", [](Communicator& c, int peer, const RegisteredMemory& l, const RegisteredMemory& r) {
        return std::make_shared<MemoryChannel>(c.memory_channel(peer, l, r));
      }, py::arg("peer"), py::arg("local"), py::arg("remote"))
      .def("port_channel", [](Communicator& c, int peer, const RegisteredMemory& l, const RegisteredMemory& r) {
        return std::make_shared<PortChannel>(c.port_channel(peer, l, r));
      }, py::arg("peer"), py::arg("local"), py::arg("remote"))
      .def("channel", &Communicator::channel, py::arg("peer"), py::arg("local"), py::arg("remote"))
      .def("abort", &Communicator::abort, py::arg("reason") = "abort() called")
      .def("check", [](Communicator& c) { c.health().check(); })
      .def("report_failure", [](Communicator& c, const std::string& message) {
        // This process is failing outside mscomm (an uncaught exception): tell every rank, and
        // fail here too, so close() does not wait for ranks that will never arrive.
        if (c.closed() || !c.health().ok()) return;
        c.bootstrap().report_failure(mscomm::ErrorKind::PeerFailure, message);
        c.health().fail(mscomm::ErrorKind::PeerFailure, message);
      }, py::arg("message"), py::call_guard<py::gil_scoped_release>())
      .def("close", &Communicator::close, py::call_guard<py::gil_scoped_release>());
}
