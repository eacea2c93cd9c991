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

namespace mscomm {

// What values a variable accepts (csrc/src/core/env_rules.cpp; a test checks that every
// registered variable has a rule). Readers and check_environment() refuse anything else with an
// error naming the variable and the valid values.
enum class EnvKind { Text, Integer, Number, Boolean, IntegerOrAuto };
struct EnvRule {
  const char* name;
  EnvKind kind;
  double min, max;   // Integer, Number, IntegerOrAuto: inclusive bounds
  const char* unit;  // "bytes", "seconds", "" ...
};

const std::vector<EnvRule>& env_rules();
// Null when the variable has no rule.
const EnvRule* env_rule(const char* name);
// "an integer in 0..1099511627776 (bytes)", for errors and docs.
std::string env_valid_values(const EnvRule& rule);
// Checks one value against the variable's rule; throws InvalidArgument naming both.
void env_check_value(const char* name, const std::string& value);
// Checks every set MSCOMM_ variable of the environment that is registered (all problems in one
// InvalidArgument); returns the names of set MSCOMM_ variables that are not registered.
std::vector<std::string> check_environment();

}  // namespace mscomm
