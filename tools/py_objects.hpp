#pragma once
/// \file Python containers this process lends to a peer: a list, dict or set that brine cannot
/// carry by value travels as a reference to one of these objects (as a Python client's own
/// list would), typed "builtins.list" / "builtins.dict" / "builtins.set" so that a Python peer
/// builds its usual proxy and a tether peer's std::vector / std::map bindings can pull it.
///
/// Supported on the peer's side: len(), iteration, `in`, indexing (list: ints, negative too;
/// dict: keys), repr()/str(), and for dicts keys(), values(), items() and get(). Immutable.
/// Objects run on the loop thread of the connection they were exported on.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "literal.hpp"
#include "tether/rpc/any.hpp"
#include "tether/rpc/object.hpp"

namespace tether::tools {

class PyContainer : public Object {
 public:
  enum class Kind { kList, kDict, kSet };
  /// kDict: items are key, value, key, value ...
  PyContainer(Kind kind, std::vector<Any> items) : kind_(kind), items_(std::move(items)) {}

  [[nodiscard]] std::string type_name() const override;
  [[nodiscard]] bool has_attr(std::string_view name) const override;
  Any get_attr(CallContext& ctx, std::string_view name) override;
  Task<Any> call_attr(CallContext& ctx, std::string_view name, std::vector<Any> args, Kwargs kwargs) override;
  [[nodiscard]] std::string repr() const override;
  [[nodiscard]] std::vector<std::string> attr_names() const override;
  [[nodiscard]] std::vector<std::string> inspect_names() const override;

  [[nodiscard]] Kind kind() const noexcept { return kind_; }
  /// The elements (kDict: key, value, key, value ...).
  [[nodiscard]] const std::vector<Any>& items() const noexcept { return items_; }
  [[nodiscard]] std::size_t size() const noexcept {
    return kind_ == Kind::kDict ? items_.size() / 2 : items_.size();
  }

 private:
  Any dispatch(std::string_view name, std::vector<Any> args);
  [[nodiscard]] std::vector<Any> iteration_items() const;

  Kind kind_;
  std::vector<Any> items_;
};

/// The literal as something a call can pass: plain values by value, tuples as tuples, lists,
/// dicts and sets as PyContainer objects (exported by reference when sent).
[[nodiscard]] Any literal_to_any(const Literal& lit);

/// repr() of an Any that holds no Netref (values and local objects).
[[nodiscard]] std::string local_repr(const Any& a);

}  // namespace tether::tools
