// Netref operations: each one request to the peer (wire spec §7), and AsyncResult.

#include <fmt/format.h>

#include "rpc/connection_core.hpp"
#include "tether/rpc/py_error.hpp"

namespace tether {

using rpc::Handler;
using rpc::detail::ConnectionCore;
using brine::Value;

namespace {

const rpc::detail::NetrefState& checked(const std::shared_ptr<rpc::detail::NetrefState>& s) {
  if (!s) throw UsageError("empty Netref");
  return *s;
}

Task<Any> request(Netref self, Handler h, std::vector<Any> args) {
  std::shared_ptr<ConnectionCore> core = checked(self.state()).lock();
  Any r = co_await core->sync_request(h, std::move(args));
  co_return r;
}

std::string expect_str(const Any& a, const char* what) {
  if (a.is_value() && a.value().is_str()) return a.value().as_str();
  throw ProtocolError(fmt::format("{} did not return a str: {}", what, a.repr()));
}

std::int64_t expect_int(const Any& a, const char* what) {
  if (a.is_value() && a.value().is_int64()) return a.value().as_int64();
  throw ProtocolError(fmt::format("{} did not return an int: {}", what, a.repr()));
}

Any kwargs_any(Kwargs kwargs) {
  std::vector<Any> pairs;
  pairs.reserve(kwargs.size());
  for (auto& [k, v] : kwargs) pairs.push_back(Any::tuple({Any(Value(k)), std::move(v)}));
  return Any::tuple(std::move(pairs));
}

bool truthy(const Any& a) {
  if (!a.is_value()) return true;
  const Value& v = a.value();
  if (v.is_bool()) return v.as_bool();
  if (v.is_none()) return false;
  if (v.is_int64()) return v.as_int64() != 0;
  return true;
}

}  // namespace

const std::string& Netref::type_name() const { return checked(s_).type_name; }
const Value& Netref::id_pack() const { return checked(s_).id_pack; }

bool Netref::connected() const noexcept {
  if (!s_) return false;
  auto c = s_->core.lock();
  return c && !c->closed();
}

bool Netref::same_object(const Netref& other) const noexcept {
  if (!s_ || !other.s_) return false;
  return s_ == other.s_ || (s_->key == other.s_->key && !s_->core.owner_before(other.s_->core) &&
                            !other.s_->core.owner_before(s_->core));
}

Task<Any> Netref::getattr(std::string name) const {
  return request(*this, Handler::kGetAttr, {Any(*this), Any(Value(std::move(name)))});
}

Task<Netref> Netref::attr(std::string name) const {
  Any a = co_await getattr(name);
  if (!a.is_netref()) throw PyError("TypeError", fmt::format("attribute '{}' is a plain value: {}", name, a.repr()));
  co_return a.netref();
}

Task<void> Netref::setattr(std::string name, Any value) const {
  Any r = co_await request(*this, Handler::kSetAttr, make_args(*this, Value(std::move(name)), std::move(value)));
  (void)r;
}

Task<void> Netref::delattr(std::string name) const {
  Any r = co_await request(*this, Handler::kDelAttr, make_args(*this, Value(std::move(name))));
  (void)r;
}

Task<Any> Netref::call(std::vector<Any> args, Kwargs kwargs) const {
  return request(*this, Handler::kCall, {Any(*this), Any::tuple(std::move(args)), kwargs_any(std::move(kwargs))});
}

Task<Any> Netref::callattr(std::string name, std::vector<Any> args, Kwargs kwargs) const {
  return request(*this, Handler::kCallAttr,
                 {Any(*this), Any(Value(std::move(name))), Any::tuple(std::move(args)), kwargs_any(std::move(kwargs))});
}

AsyncResult Netref::call_async(std::vector<Any> args, Kwargs kwargs) const {
  auto core = checked(s_).lock();
  return AsyncResult(
      core->send_request(Handler::kCall, {Any(*this), Any::tuple(std::move(args)), kwargs_any(std::move(kwargs))}));
}

AsyncResult Netref::callattr_async(std::string name, std::vector<Any> args, Kwargs kwargs) const {
  auto core = checked(s_).lock();
  return AsyncResult(core->send_request(
      Handler::kCallAttr,
      {Any(*this), Any(Value(std::move(name))), Any::tuple(std::move(args)), kwargs_any(std::move(kwargs))}));
}

Task<std::string> Netref::str() const {
  Any r = co_await request(*this, Handler::kStr, make_args(*this));
  co_return expect_str(r, "STR");
}

Task<std::string> Netref::repr() const {
  Any r = co_await request(*this, Handler::kRepr, make_args(*this));
  co_return expect_str(r, "REPR");
}

Task<std::int64_t> Netref::hash() const {
  Any r = co_await request(*this, Handler::kHash, make_args(*this));
  co_return expect_int(r, "HASH");
}

Task<std::vector<std::string>> Netref::dir() const {
  Any r = co_await request(*this, Handler::kDir, make_args(*this));
  std::vector<std::string> names;
  for (const auto& item : r.items()) names.push_back(expect_str(item, "DIR"));
  co_return names;
}

Task<Any> Netref::compare(Any other, std::string op) const {
  return request(*this, Handler::kCmp, {Any(*this), std::move(other), Any(Value(std::move(op)))});
}

Task<bool> Netref::equals(Any other) const {
  Any r = co_await compare(std::move(other), "__eq__");
  if (r.is_value() && r.value().is_not_implemented()) co_return false;
  co_return truthy(r);
}

Task<std::int64_t> Netref::len() const {
  Any r = co_await callattr("__len__");
  co_return expect_int(r, "__len__");
}

Task<Any> Netref::getitem(Any key) const { return callattr("__getitem__", {std::move(key)}); }

Task<void> Netref::setitem(Any key, Any value) const {
  Any r = co_await callattr("__setitem__", make_args(std::move(key), std::move(value)));
  (void)r;
}

Task<void> Netref::delitem(Any key) const {
  Any r = co_await callattr("__delitem__", make_args(std::move(key)));
  (void)r;
}

Task<bool> Netref::contains(Any item) const {
  Any r = co_await callattr("__contains__", make_args(std::move(item)));
  co_return truthy(r);
}

Task<bool> Netref::truth() const {
  bool has_bool = true;
  Any r;
  try {
    r = co_await callattr("__bool__");
  } catch (const RemoteError& e) {
    if (e.type_name() != "AttributeError") throw;
    has_bool = false;
  }
  if (has_bool) co_return truthy(r);
  bool has_len = true;
  std::int64_t n = 0;
  try {
    n = co_await len();
  } catch (const RemoteError& e) {
    if (e.type_name() != "AttributeError") throw;
    has_len = false;
  }
  co_return has_len ? n != 0 : true;
}

Task<Netref> Netref::iter() const {
  Any r = co_await callattr("__iter__");
  if (!r.is_netref()) throw ProtocolError("__iter__ did not return a reference");
  co_return r.netref();
}

Task<std::optional<Any>> Netref::next() const {
  std::optional<Any> out;
  try {
    Any r = co_await callattr("__next__");
    out = std::move(r);
  } catch (const StopIteration&) {
  }
  co_return out;
}

Task<std::vector<Any>> Netref::to_list(std::size_t batch) const {
  Netref it = co_await iter();
  std::vector<Any> out;
  for (;;) {
    std::vector<Any> args = make_args(it, Value(static_cast<std::int64_t>(batch ? batch : 1)));
    Any chunk = co_await request(it, Handler::kBuffIter, std::move(args));
    std::vector<Any> items = chunk.items();
    if (items.empty()) break;
    for (auto& i : items) out.push_back(std::move(i));
  }
  co_return out;
}

Task<Any> Netref::enter() const { return callattr("__enter__"); }

Task<Any> Netref::exit(Any exc_value) const {
  return request(*this, Handler::kCtxExit, {Any(*this), std::move(exc_value)});
}

bool Netref::is_instance_of(std::string_view name) const {
  const std::string& t = type_name();
  if (t == name) return true;
  // "list" matches "builtins.list"
  return t.size() > name.size() && t.ends_with(name) && t[t.size() - name.size() - 1] == '.';
}

// -------------------------------------------------------------------------------- AsyncResult

bool AsyncResult::ready() const noexcept { return p_ && p_->done; }
bool AsyncResult::has_error() const noexcept { return p_ && p_->done && p_->error; }
bool AsyncResult::expired() const noexcept { return p_ && p_->expired; }
std::uint64_t AsyncResult::seq() const noexcept { return p_ ? p_->seq : 0; }

const Any& AsyncResult::value() const {
  if (!p_) throw UsageError("empty AsyncResult");
  if (!p_->done) throw UsageError("AsyncResult is not ready");
  if (p_->error) std::rethrow_exception(p_->error);
  return p_->value;
}

Task<Any> AsyncResult::wait() const {
  if (!p_) throw UsageError("empty AsyncResult");
  std::shared_ptr<rpc::detail::PendingCall> p = p_;
  while (!p->done) {
    co_await tether::detail::WaitAwaiter{p->waiters};
  }
  if (p->error) std::rethrow_exception(p->error);
  co_return p->value;
}

void AsyncResult::add_callback(std::function<void(const AsyncResult&)> fn) const {
  if (!p_) throw UsageError("empty AsyncResult");
  if (p_->done) {
    fn(*this);
  } else {
    p_->callbacks.push_back(std::move(fn));
  }
}

void AsyncResult::set_expiry(Duration d) const {
  if (!p_) throw UsageError("empty AsyncResult");
  if (p_->done) return;
  if (p_->expiry) p_->loop->cancel_timer(p_->expiry);
  std::weak_ptr<rpc::detail::PendingCall> weak = p_;
  p_->expiry = p_->loop
                   ->call_later(d,
                                [weak]() {
                                  auto p = weak.lock();
                                  if (!p || p->done) return;
                                  p->expiry = {};
                                  p->expired = true;
                                  if (auto core = p->core.lock()) core->forget_pending(p->seq);
                                  rpc::detail::complete_pending(
                                      p, Any(), std::make_exception_ptr(Timeout("result expired")));
                                })
                   .id();
}

}  // namespace tether
