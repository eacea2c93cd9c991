// The one registry of environment variables. Every variable mscomm reads (C++ or Python) is
// listed here with its default and meaning; docs/environment.md is generated from this table.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mscomm {

struct EnvVar {
  const char* name;
  const char* default_value;
  const char* meaning;
};

const std::vector<EnvVar>& env_registry();

// Readers fail with InvalidArgument when the variable is not in the registry or does not parse.
std::string env_string(const char* name);
int64_t env_int(const char* name);
double env_double(const char* name);
bool env_bool(const char* name);

}  // namespace mscomm
