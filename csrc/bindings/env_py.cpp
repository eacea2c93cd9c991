#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "mscomm/env.hpp"

namespace py = pybind11;

void register_env(py::module_& m) {
  m.def("env_registry", [] {
    std::vector<std::tuple<std::string, std::string, std::string>> out;
    for (const auto& v : mscomm::env_registry()) out.emplace_back(v.name, v.default_value, v.meaning);
    return out;
  }, "Every environment variable mscomm reads: (name, default, meaning).");
}
