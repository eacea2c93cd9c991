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
  m.def("env_valid_values", [](const std::string& name) {
    const mscomm::EnvRule* rule = mscomm::env_rule(name.c_str());
    return rule ? mscomm::env_valid_values(*rule) : std::string();
  }, "What values the variable accepts, in words ('' when it has no rule).");
  m.def("env_check_value", [](const std::string& name, const std::string& value) {
    mscomm::env_check_value(name.c_str(), value);
  }, "Raises InvalidArgument when value is not valid for the variable.");
  m.def("check_environment", &mscomm::check_environment,
        "Checks every set, registered MSCOMM_ variable (InvalidArgument naming each bad one); returns the "
        "names of set MSCOMM_ variables that are not registered.");
}
