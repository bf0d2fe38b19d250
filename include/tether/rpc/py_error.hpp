#pragma once
/// \file PyError: throw a Python exception from C++ code that a peer calls.
///
/// The RPC dispatcher turns a PyError into an exception reply naming `module.type_name` with
/// `args`, so a Python caller can `except KeyError:` etc. Other C++ exceptions are mapped as
/// documented in docs/rpc.md (std::invalid_argument -> ValueError, std::out_of_range ->
/// IndexError, std::overflow_error -> OverflowError, anything else -> RuntimeError).

#include <stdexcept>
#include <string>
#include <vector>

#include "tether/base/export.hpp"
#include "tether/brine/value.hpp"

namespace tether {

class TETHER_API PyError : public std::runtime_error {
 public:
  /// A builtins exception with one message argument, e.g. PyError("KeyError", "missing").
  PyError(std::string type_name, const std::string& message);
  /// Full form: any module, any dumpable args.
  PyError(std::string module, std::string type_name, std::vector<brine::Value> args);

  [[nodiscard]] const std::string& module() const noexcept { return module_; }
  [[nodiscard]] const std::string& type_name() const noexcept { return type_name_; }
  [[nodiscard]] const std::vector<brine::Value>& args() const noexcept { return args_; }

 private:
  std::string module_;
  std::string type_name_;
  std::vector<brine::Value> args_;
};

/// Python's AttributeError("cannot access 'name'") — what RPyC sends for refused attributes.
TETHER_API PyError attribute_error(std::string_view name);
/// TypeError with a message.
TETHER_API PyError type_error(const std::string& message);
/// Thrown by an exported iterator's __next__ to end iteration (sent as StopIteration).
class TETHER_API StopIteration : public std::exception {
 public:
  const char* what() const noexcept override { return "StopIteration"; }
};

}  // namespace tether
