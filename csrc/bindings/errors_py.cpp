// C++ errors become the classes of mscomm.errors (each also subclasses the closest builtin).
#include <pybind11/pybind11.h>

#include "mscomm/errors.hpp"

namespace py = pybind11;

void register_errors(py::module_& m) {
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const mscomm::Error& e) {
      py::object errors = py::module_::import("mscomm.errors");
      py::object cls = errors.attr("from_kind")(static_cast<int>(e.kind()));
      PyErr_SetString(cls.ptr(), e.what());
    }
  });
}
