// Semaphores and channels for users who write their own algorithms. Blocking calls release the GIL.
#include <pybind11/pybind11.h>

#include "mscomm/channel.hpp"
#include "mscomm/connection.hpp"
#include "mscomm/semaphore.hpp"

namespace py = pybind11;
using namespace mscomm;

void register_channel(py::module_& m) {
  py::enum_<Transport>(m, "Transport").value("SHM", Transport::SharedMemory).value("TCP", Transport::Tcp);
  py::class_<Semaphore>(m, "Semaphore")
      .def("signal", &Semaphore::signal, py::call_guard<py::gil_scoped_release>())
      .def("wait", &Semaphore::wait, py::arg("timeout"), py::call_guard<py::gil_scoped_release>())
      .def("poll", &Semaphore::poll)
      .def_property_readonly("peer", &Semaphore::peer)
      .def_property_readonly("consumed", &Semaphore::consumed);
  py::class_<Channel, std::shared_ptr<Channel>>(m, "Channel")
      .def("put", &Channel::put, py::arg("dst_offset"), py::arg("src_offset"), py::arg("size"),
           py::call_guard<py::gil_scoped_release>())
      .def("signal", &Channel::signal, py::call_guard<py::gil_scoped_release>())
      .def("wait", &Channel::wait, py::arg("timeout"), py::call_guard<py::gil_scoped_release>())
      .def("poll", &Channel::poll)
      .def("flush", &Channel::flush, py::arg("timeout"), py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("peer", &Channel::peer)
      .def_property_readonly("transport", &Channel::transport)
      .def_property_readonly("local", &Channel::local)
      .def_property_readonly("remote", &Channel::remote);
  py::class_<MemoryChannel, Channel, std::shared_ptr<MemoryChannel>>(m, "MemoryChannel")
      .def("get", &MemoryChannel::get, py::arg("dst_offset"), py::arg("src_offset"), py::arg("size"),
           py::call_guard<py::gil_scoped_release>());
  py::class_<PortChannel, Channel, std::shared_ptr<PortChannel>>(m, "PortChannel");
}
