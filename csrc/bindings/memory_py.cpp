// RegisteredMemory exposes the buffer protocol, so numpy.frombuffer(mem, dtype) views it.
#include <pybind11/pybind11.h>

#include "mscomm/errors.hpp"
#include "mscomm/registered_memory.hpp"

namespace py = pybind11;
using mscomm::RegisteredMemory;

void register_memory(py::module_& m) {
  py::class_<RegisteredMemory>(m, "RegisteredMemory", py::buffer_protocol())
      .def_property_readonly("size", &RegisteredMemory::size)
      .def_property_readonly("rank", &RegisteredMemory::rank)
      .def_property_readonly("id", &RegisteredMemory::id)
      .def_property_readonly("is_mapped", [](const RegisteredMemory& r) { return r.data() != nullptr; })
      .def_property_readonly("address", [](const RegisteredMemory& r) { return reinterpret_cast<uintptr_t>(r.data()); })
      .def_buffer([](RegisteredMemory& r) -> py::buffer_info {
        if (!r.data())
          throw mscomm::InvalidArgument("rank " + std::to_string(r.rank()) +
                                        "'s memory is not mapped in this process (different host or MSCOMM_FORCE_TCP)");
        return py::buffer_info(r.data(), 1, py::format_descriptor<uint8_t>::format(), 1, {r.size()}, {1});
      })
      .def("__repr__", [](const RegisteredMemory& r) {
        return "<RegisteredMemory rank=" + std::to_string(r.rank()) + " id=" + std::to_string(r.id()) +
               " size=" + std::to_string(r.size()) + (r.data() ? " mapped>" : ">");
      });
}

// Address of a contiguous buffer-protocol object, without the cost of numpy's __array_interface__.
void register_buffer_address(py::module_& m) {
  m.def("buffer_address", [](py::handle obj) -> uintptr_t {
    Py_buffer view;
    if (PyObject_GetBuffer(obj.ptr(), &view, PyBUF_ANY_CONTIGUOUS) != 0) {
      PyErr_Clear();
      return 0;  // not exportable (e.g. a numpy user dtype): the caller falls back
    }
    auto address = reinterpret_cast<uintptr_t>(view.buf);
    PyBuffer_Release(&view);
    return address;
  });
}
