// The _core extension module: one register_<concept> function per binding file.
#include <pybind11/pybind11.h>

namespace py = pybind11;

void register_errors(py::module_& m);
void register_env(py::module_& m);
void register_bootstrap(py::module_& m);
void register_memory(py::module_& m);
void register_buffer_address(py::module_& m);
void register_channel(py::module_& m);
void register_communicator(py::module_& m);
void register_collectives(py::module_& m);
void register_plan(py::module_& m);
void register_graph(py::module_& m);

PYBIND11_MODULE(_core, m) {
  m.doc() = "mscomm C++ core: bootstrap, communicator, registered memory, semaphores, channels, collectives";
  register_errors(m);
  register_env(m);
  register_bootstrap(m);
  register_memory(m);
  register_buffer_address(m);
  register_channel(m);
  register_communicator(m);
  register_collectives(m);
  register_plan(m);
  register_graph(m);
}
