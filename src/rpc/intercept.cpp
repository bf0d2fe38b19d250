// Interceptors (tether/rpc/interceptor.hpp): the chain run around served and sent requests,
// and the capped repr of their arguments.

#include "rpc/intercept.hpp"

#include <chrono>

#include "rpc/connection_core.hpp"
#include "tether/base/log.hpp"
#include "tether/rpc/py_error.hpp"

namespace tether::rpc {

CallInterceptor::~CallInterceptor() = default;
Decision CallInterceptor::before(CallInfo& /*info*/) { return Decision::proceed(); }
void CallInterceptor::after(const CallInfo& /*info*/, const CallOutcome& /*outcome*/) {}

}  // namespace tether::rpc

namespace tether::rpc::detail {

namespace {

std::int64_t steady_nanos() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

constexpr std::string_view kEllipsis = "...";

/// The attribute a request names in items[1] (CALLATTR, GETATTR, SETATTR, DELATTR).
bool names_attribute(Handler h) noexcept {
  return h == Handler::kCallAttr || h == Handler::kGetAttr || h == Handler::kSetAttr ||
         h == Handler::kDelAttr;
}

/// Handlers whose first argument is the target object (left out of the repr).
bool has_target(Handler h) noexcept { return h != Handler::kPing && h != Handler::kGetRoot; }

std::vector<Any> tuple_items(const Any& a) {
  if (a.is_tuple()) return a.items();
  return {};
}

}  // namespace

// ---------------------------------------------------------------------------- CappedRepr

void CappedRepr::put(std::string_view s) {
  if (cut_) return;
  if (out_.size() + s.size() <= limit_) {
    out_.append(s);
    return;
  }
  // Too long: keep what fits before "...", cut on a UTF-8 boundary.
  const bool dots = limit_ >= kEllipsis.size();
  out_.append(s);
  std::size_t keep = dots ? limit_ - kEllipsis.size() : limit_;
  while (keep > 0 && (static_cast<unsigned char>(out_[keep]) & 0xC0) == 0x80) --keep;
  out_.resize(keep);
  if (dots) out_.append(kEllipsis);
  cut_ = true;
}

void CappedRepr::any(const Any& a) {
  if (cut_) return;
  if (a.is_value()) {
    // A value's repr stops a little past what is left (enough to know it was cut).
    put(a.value().repr(left() + 8));
  } else if (a.is_tuple()) {
    CappedRepr inner(left() + 8);
    inner.items(tuple_items(a));
    put(std::move(inner).take());
  } else {
    put(a.repr());
  }
}

void CappedRepr::arg(const Any& a) {
  separate();
  any(a);
}

void CappedRepr::arg(const brine::Value& v) {
  separate();
  put(v.repr(left() + 8));
}

void CappedRepr::kwarg(std::string_view name, const Any& value) {
  separate();
  put(name);
  put("=");
  any(value);
}

void CappedRepr::items(std::span<const Any> items) {
  open();
  for (const Any& a : items) arg(a);
  if (items.size() == 1) put(",");
  close();
}

void CappedRepr::call_args(std::span<const Any> args, const Any* kwargs) {
  open();
  for (const Any& a : args) arg(a);
  if (kwargs && kwargs->is_tuple()) {
    for (const Any& pair : tuple_items(*kwargs)) {
      std::vector<Any> kv = tuple_items(pair);
      if (kv.size() != 2 || !kv[0].is_value() || !kv[0].value().is_str()) continue;
      kwarg(kv[0].value().as_str(), kv[1]);
    }
  }
  close();
}

// ------------------------------------------------------------------------ InterceptScope

std::exception_ptr InterceptScope::before() {
  for (const auto& ic : *chain_) {
    ++ran_;
    Decision d;
    try {
      d = ic->before(info_);
    } catch (...) {
      TETHER_LOG_WARN("rpc connection {}: an interceptor's before() threw for {} {}: {} (the call fails)",
                      info_.connection, handler_name(info_.handler), info_.name,
                      describe_current_exception());
      denied_ = true;
      return std::current_exception();
    }
    if (!d.allow) {
      denied_ = true;
      return std::make_exception_ptr(
          PyError("PermissionError", d.message.empty() ? "call denied" : d.message));
    }
  }
  return nullptr;
}

InterceptScope::~InterceptScope() {
  // A served request dropped before its reply was sent (the connection closed meanwhile).
  if (!finished_) after(std::make_exception_ptr(Disconnected("connection closed before the reply was sent")));
}

void InterceptScope::after(const std::exception_ptr& failure) noexcept {
  if (finished_) return;
  finished_ = true;
  try {
    CallOutcome o;
    o.nanos = steady_nanos() - info_.start_nanos;
    o.denied = denied_;
    if (failure) {
      o.ok = false;
      PythonError e = python_error_of(failure);
      o.error_type = std::move(e.type);
      o.error_message = std::move(e.message);
    }
    for (std::size_t i = ran_; i-- > 0;) {
      try {
        (*chain_)[i]->after(info_, o);
      } catch (...) {
        TETHER_LOG_WARN("rpc connection {}: an interceptor's after() threw (ignored): {}", info_.connection,
                        describe_current_exception());
      }
    }
  } catch (...) {
    TETHER_LOG_WARN("rpc connection {}: interceptors not told how a call ended: {}", info_.connection,
                    describe_current_exception());
  }
}

// ------------------------------------------------------------------------ ConnectionCore

CallInfo ConnectionCore::call_info(CallSide side, Handler h) const {
  CallInfo info;
  info.side = side;
  info.handler = h;
  info.peer = opts_.peer;
  info.connection = opts_.name;
  info.start_nanos = steady_nanos();
  return info;
}

void ConnectionCore::describe_items(CallInfo& info, std::span<const Any> items) const {
  const Handler h = info.handler;
  if (names_attribute(h) && items.size() > 1 && items[1].is_value() && items[1].value().is_str()) {
    info.name = items[1].value().as_str();
  }
  CappedRepr repr(opts_.interceptor_repr_limit);
  if (h == Handler::kCallAttr && items.size() >= 3) {
    repr.call_args(tuple_items(items[2]), items.size() > 3 ? &items[3] : nullptr);
  } else if (h == Handler::kCall && items.size() >= 2) {
    repr.call_args(tuple_items(items[1]), items.size() > 2 ? &items[2] : nullptr);
  } else {
    std::size_t skip = has_target(h) && !items.empty() ? 1 : 0;
    if (names_attribute(h) && items.size() > 1) skip = 2;
    repr.items(items.subspan(skip));
  }
  info.args = std::move(repr).take();
}

std::unique_ptr<InterceptScope> ConnectionCore::intercept_served(const Request& req) {
  CallInfo info = call_info(CallSide::kServed, req.handler);
  if (req.call.present) {
    if (names_attribute(req.handler)) info.name = req.call.name;
    CappedRepr repr(opts_.interceptor_repr_limit);
    repr.call_args(req.call.args, &req.call.kwargs);
    info.args = std::move(repr).take();
  } else {
    describe_items(info, req.args);
  }
  return std::make_unique<InterceptScope>(interceptors_, std::move(info));
}

std::unique_ptr<InterceptScope> ConnectionCore::intercept_sent(CallInfo info) {
  auto scope = std::make_unique<InterceptScope>(interceptors_, std::move(info));
  if (std::exception_ptr refused = scope->before()) {
    scope->after(refused);
    std::rethrow_exception(refused);
  }
  return scope;
}

void ConnectionCore::describe_callattr(CallInfo& info, std::string_view name, std::span<const Any> args,
                                       const Kwargs& kwargs) const {
  info.name = std::string(name);
  CappedRepr repr(opts_.interceptor_repr_limit);
  repr.open();
  for (const Any& a : args) repr.arg(a);
  for (const auto& [k, v] : kwargs) repr.kwarg(k, v);
  repr.close();
  info.args = std::move(repr).take();
}

void ConnectionCore::describe_callattr(CallInfo& info, std::string_view name,
                                       std::span<const brine::Value> args) const {
  info.name = std::string(name);
  CappedRepr repr(opts_.interceptor_repr_limit);
  repr.open();
  for (const brine::Value& v : args) repr.arg(v);
  repr.close();
  info.args = std::move(repr).take();
}

}  // namespace tether::rpc::detail
