#include "tether/rpc/convert.hpp"

#include "tether/base/error.hpp"
#include "tether/rpc/object.hpp"

#include <fmt/format.h>

namespace tether::detail {

namespace {
std::string kind_of(const Any& a) {
  if (a.is_netref()) return a.netref().type_name();
  if (a.is_local()) return "object";
  if (a.is_tuple()) return "tuple";
  return std::string(brine::type_name(a.value().type()));
}
}  // namespace

void conversion_error(const std::string& want, const Any& got) {
  throw PyError("TypeError", fmt::format("expected {}, got {}", want, kind_of(got)));
}

void remote_conversion_error(const Any& a, const std::string& target) {
  throw UsageError(fmt::format(
      "Any::as<{}>(): the value is (or holds) a reference to a remote {}; converting it takes requests to "
      "the peer: use co_await tether::from_any<T>(value) in a coroutine, or the typed forms of SyncNetref "
      "(getattr<R>, getitem<R>, call<R>, to_list<R>)",
      target, kind_of(a)));
}

void overflow_error(const std::string& want, const brine::Value& got) {
  throw PyError("OverflowError", fmt::format("{} out of range for {}", got.repr(60), want));
}

Task<std::vector<Any>> sequence_items(Any a) {
  if (a.is_tuple()) co_return a.items();
  if (a.is_value() && a.value().is_frozenset()) {
    const auto& m = a.value().as_frozenset();
    co_return std::vector<Any>(m.begin(), m.end());
  }
  if (a.is_netref()) {
    std::vector<Any> items = co_await a.netref().to_list();
    co_return items;
  }
  conversion_error("a sequence", a);
}

Task<std::vector<std::pair<Any, Any>>> mapping_items(Any a) {
  std::vector<std::pair<Any, Any>> out;
  if (a.is_netref()) {
    // A Python dict by reference: keys through iteration, values through __getitem__ (§8.6).
    Netref d = a.netref();
    std::vector<Any> keys = co_await d.to_list();
    for (auto& k : keys) {
      Any v = co_await d.getitem(k);
      out.emplace_back(std::move(k), std::move(v));
    }
    co_return out;
  }
  if (a.is_tuple()) {
    for (auto& pair : a.items()) {
      if (!pair.is_tuple()) conversion_error("a mapping (tuple of pairs)", a);
      auto kv = pair.items();
      if (kv.size() != 2) conversion_error("a mapping (tuple of pairs)", a);
      out.emplace_back(std::move(kv[0]), std::move(kv[1]));
    }
    co_return out;
  }
  conversion_error("a mapping", a);
}

const Netref* forwarded_netref(const Any& a) noexcept {
  if (!a.is_local() || !a.object()) return nullptr;
  return a.object()->forwards_to();
}

}  // namespace tether::detail
