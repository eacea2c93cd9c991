#include "mscomm/dtype.hpp"

#include "mscomm/errors.hpp"

namespace mscomm {

namespace {
struct DtypeInfo {
  DataType type;
  const char* name;
  size_t size;
};
constexpr DtypeInfo kDtypes[] = {
    {DataType::Int8, "int8", 1},         {DataType::Uint8, "uint8", 1},
    {DataType::Int32, "int32", 4},       {DataType::Int64, "int64", 8},
    {DataType::Float16, "float16", 2},   {DataType::BFloat16, "bfloat16", 2},
    {DataType::Float32, "float32", 4},   {DataType::Float64, "float64", 8},
};
constexpr const char* kOps[] = {"sum", "prod", "min", "max", "avg"};
}  // namespace

size_t dtype_size(DataType t) { return kDtypes[static_cast<int>(t)].size; }
const char* dtype_name(DataType t) { return kDtypes[static_cast<int>(t)].name; }
const char* op_name(ReduceOp op) { return kOps[static_cast<int>(op)]; }

DataType parse_dtype(const std::string& name) {
  std::string known;
  for (const auto& d : kDtypes) {
    if (name == d.name) return d.type;
    known += known.empty() ? d.name : std::string(", ") + d.name;
  }
  throw InvalidArgument("unsupported dtype '" + name + "'; supported: " + known);
}

ReduceOp parse_op(const std::string& name) {
  for (int i = 0; i < 5; ++i)
    if (name == kOps[i]) return static_cast<ReduceOp>(i);
  throw InvalidArgument("unsupported reduce op '" + name + "'; supported: sum, prod, min, max, avg");
}

}  // namespace mscomm
