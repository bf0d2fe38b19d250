#pragma once
// Private: one intercepted call (ConnectionOptions::interceptors, tether/rpc/interceptor.hpp):
// the CallInfo the chain sees, which interceptors' `before` ran, and the `after` calls.

#include <algorithm>
#include <cstddef>
#include <exception>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tether/rpc/any.hpp"
#include "tether/rpc/interceptor.hpp"

namespace tether::rpc::detail {

using InterceptorChain = std::vector<std::shared_ptr<CallInterceptor>>;

/// Python-like repr of call arguments, at most `limit` bytes (cut text ends in "...", never
/// inside a UTF-8 sequence).
class CappedRepr {
 public:
  explicit CappedRepr(std::size_t limit) : limit_(limit) {}
  /// "(a, b, k=v)": positional items then keyword pairs (an Any tuple of (name, value) tuples,
  /// None or empty for none), as a received call has them.
  void call_args(std::span<const Any> args, const Any* kwargs);
  /// The same piece by piece: open(), arg()..., kwarg()..., close().
  void open() { put("("); }
  void arg(const Any& a);
  void arg(const brine::Value& v);
  void kwarg(std::string_view name, const Any& value);
  void close() { put(")"); }
  /// "(a, b)" of loose items (the arguments of handlers other than the calls).
  void items(std::span<const Any> items);
  std::string take() && { return std::move(out_); }

 private:
  void put(std::string_view s);
  void any(const Any& a);
  [[nodiscard]] std::size_t left() const noexcept { return limit_ - std::min(limit_, out_.size()); }
  void separate() { put(n_++ ? ", " : ""); }
  std::size_t limit_;
  std::string out_;
  std::size_t n_ = 0;
  bool cut_ = false;
};

/// A call going through the chain: made only when interceptors are installed.
class InterceptScope {
 public:
  InterceptScope(std::shared_ptr<const InterceptorChain> chain, CallInfo info)
      : chain_(std::move(chain)), info_(std::move(info)) {}
  /// Runs `after` if nothing did yet (the call was dropped unanswered).
  ~InterceptScope();
  InterceptScope(const InterceptScope&) = delete;
  InterceptScope& operator=(const InterceptScope&) = delete;
  /// Runs every `before` in order: null when all allowed; else what the call fails with
  /// (PermissionError for a deny, or what `before` threw).
  std::exception_ptr before();
  /// Runs `after` in reverse order for those whose `before` ran. `failure`: how the call
  /// ended (null: it succeeded).
  void after(const std::exception_ptr& failure) noexcept;

 private:
  std::shared_ptr<const InterceptorChain> chain_;
  CallInfo info_;
  std::size_t ran_ = 0;
  bool denied_ = false;
  bool finished_ = false;
};

}  // namespace tether::rpc::detail
