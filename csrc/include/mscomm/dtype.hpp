// Element types and reduction operators understood by every collective.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace mscomm {

enum class DataType : uint8_t { Int8, Uint8, Int32, Int64, Float16, BFloat16, Float32, Float64 };
enum class ReduceOp : uint8_t { Sum, Prod, Min, Max, Avg };

size_t dtype_size(DataType t);
const char* dtype_name(DataType t);
const char* op_name(ReduceOp op);
DataType parse_dtype(const std::string& name);  // "float32", "bfloat16", ...
ReduceOp parse_op(const std::string& name);     // "sum", "prod", "min", "max", "avg"

}  // namespace mscomm
