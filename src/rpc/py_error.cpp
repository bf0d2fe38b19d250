#include "tether/rpc/py_error.hpp"

#include <fmt/format.h>

#include "tether/rpc/remote_exception.hpp"

namespace tether {

namespace {
std::string describe(const std::string& module, const std::string& type,
                     const std::vector<brine::Value>& args) {
  std::string text = module == "builtins" ? type : module + "." + type;
  if (!args.empty()) {
    text += ": ";
    for (std::size_t i = 0; i < args.size(); ++i) {
      if (i) text += ", ";
      text += args[i].is_str() ? args[i].as_str() : args[i].repr(200);
    }
  }
  return text;
}
}  // namespace

PyError::PyError(std::string type_name, const std::string& message)
    : PyError("builtins", std::move(type_name), {brine::Value(message)}) {}

PyError::PyError(std::string module, std::string type_name, std::vector<brine::Value> args)
    : std::runtime_error(describe(module, type_name, args)),
      module_(std::move(module)),
      type_name_(std::move(type_name)),
      args_(std::move(args)) {}

PyError attribute_error(std::string_view name) {
  return PyError("AttributeError", fmt::format("cannot access '{}'", name));
}

PyError type_error(const std::string& message) { return PyError("TypeError", message); }

RemoteException::RemoteException(std::string module, std::string type_name, std::vector<brine::Value> args,
                                 std::vector<std::pair<std::string, brine::Value>> attrs,
                                 std::string traceback)
    : RemoteError(
          module, type_name,
          [&] {
            std::vector<std::string> text;
            for (const auto& a : args) text.push_back(a.is_str() ? a.as_str() : a.repr(4096));
            return text;
          }(),
          std::move(traceback)),
      raw_args_(std::move(args)),
      attrs_(std::move(attrs)) {}

brine::Value RemoteException::attr(std::string_view name) const {
  for (const auto& [k, v] : attrs_) {
    if (k == name) return v;
  }
  return {};
}

}  // namespace tether
