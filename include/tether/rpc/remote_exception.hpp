#pragma once
/// \file RemoteException: what a call throws when the peer answered with an exception.

#include <string>
#include <utility>
#include <vector>

#include "tether/base/error.hpp"
#include "tether/base/export.hpp"
#include "tether/brine/value.hpp"

namespace tether {

/// A tether::RemoteError that also keeps the brine values of the exception's args and attrs
/// (e.g. OSError's errno). If it propagates out of a handler, the peer gets the same exception.
class TETHER_API RemoteException : public RemoteError {
 public:
  RemoteException(std::string module, std::string type_name, std::vector<brine::Value> args,
                  std::vector<std::pair<std::string, brine::Value>> attrs, std::string traceback);
  [[nodiscard]] const std::vector<brine::Value>& raw_args() const noexcept { return raw_args_; }
  [[nodiscard]] const std::vector<std::pair<std::string, brine::Value>>& attrs() const noexcept { return attrs_; }
  /// An attribute by name (e.g. "errno"), or None.
  [[nodiscard]] brine::Value attr(std::string_view name) const;

 private:
  std::vector<brine::Value> raw_args_;
  std::vector<std::pair<std::string, brine::Value>> attrs_;
};

}  // namespace tether
