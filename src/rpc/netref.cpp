// Netref operations: each one request to the peer (wire spec §7), and AsyncResult.

#include <fmt/format.h>

#include "rpc/connection_core.hpp"
#include "tether/rpc/py_error.hpp"

namespace tether {

using brine::Value;
using rpc::Handler;
using rpc::detail::ConnectionCore;

namespace {

const rpc::detail::NetrefState& checked(const std::shared_ptr<rpc::detail::NetrefState>& s) {
  if (!s) throw UsageError("empty Netref");
  return *s;
}

/// Sends at once (the arguments are boxed before the Task is first awaited, so nothing of the
/// caller's dangles), then waits under the connection's sync timeout.
Task<Any> await_reply(AsyncResult pending) {
  Any r = co_await std::move(pending);
  co_return r;
}

Task<Any> request(const Netref& self, Handler h, std::vector<Any> args) {
  std::shared_ptr<ConnectionCore> core = checked(self.state()).lock();
  return await_reply(core->start_sync(h, std::move(args)));
}

std::string expect_str(const Any& a, const char* what) {
  if (a.is_value() && a.value().is_str()) return a.value().as_str();
  throw ProtocolError(fmt::format("{} did not return a str: {}", what, a.repr()));
}

std::int64_t expect_int(const Any& a, const char* what) {
  if (a.is_value() && a.value().is_int64()) return a.value().as_int64();
  throw ProtocolError(fmt::format("{} did not return an int: {}", what, a.repr()));
}

Any kwargs_any(Kwargs kwargs) { return rpc::detail::kwargs_tuple(std::move(kwargs)); }

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
  return request(*this, Handler::kGetAttr, make_args(*this, Value(std::move(name))));
}

Task<Netref> Netref::attr(std::string name) const {
  Any a = co_await getattr(name);
  if (!a.is_netref())
    throw PyError("TypeError", fmt::format("attribute '{}' is a plain value: {}", name, a.repr()));
  co_return a.netref();
}

Task<void> Netref::setattr(std::string name, Any value) const {
  Any r =
      co_await request(*this, Handler::kSetAttr, make_args(*this, Value(std::move(name)), std::move(value)));
  (void)r;
}

Task<void> Netref::delattr(std::string name) const {
  Any r = co_await request(*this, Handler::kDelAttr, make_args(*this, Value(std::move(name))));
  (void)r;
}

Task<Any> Netref::call(std::vector<Any> args, Kwargs kwargs) const {
  return request(*this, Handler::kCall,
                 make_args(*this, Any::tuple(std::move(args)), kwargs_any(std::move(kwargs))));
}

Task<Any> Netref::callattr(std::string name, std::vector<Any> args, Kwargs kwargs) const {
  return await_reply(detail::start_callattr(*this, std::move(name), std::move(args), std::move(kwargs)));
}

AsyncResult detail::start_call(const Netref& self, std::vector<Any> args, Kwargs kwargs) {
  std::shared_ptr<ConnectionCore> core = checked(self.state()).lock();
  return core->expire_as_sync(core->send_request(
      Handler::kCall, {Any(self), Any::tuple(std::move(args)), kwargs_any(std::move(kwargs))}));
}

AsyncResult detail::start_callattr(const Netref& self, std::string name, std::vector<Any> args,
                                   Kwargs kwargs) {
  std::shared_ptr<ConnectionCore> core = checked(self.state()).lock();
  return core->expire_as_sync(core->send_callattr(self, name, args, std::move(kwargs)));
}

AsyncResult detail::start_callattr(const Netref& self, std::string_view name, std::span<brine::Value> args) {
  std::shared_ptr<ConnectionCore> core = checked(self.state()).lock();
  return core->expire_as_sync(core->send_callattr(self, name, args));
}

AsyncResult Netref::call_async(std::vector<Any> args, Kwargs kwargs) const {
  auto core = checked(s_).lock();
  return AsyncResult(core->send_request(
      Handler::kCall, {Any(*this), Any::tuple(std::move(args)), kwargs_any(std::move(kwargs))}));
}

AsyncResult Netref::callattr_async(std::string name, std::vector<Any> args, Kwargs kwargs) const {
  auto core = checked(s_).lock();
  return AsyncResult(core->send_callattr(*this, name, args, std::move(kwargs)));
}

Task<Any> Netref::call() const { return call({}, {}); }
Task<Any> Netref::call(std::vector<Any> args) const { return call(std::move(args), {}); }
Task<Any> Netref::callattr(std::string name) const { return callattr(std::move(name), {}, {}); }
Task<Any> Netref::callattr(std::string name, std::vector<Any> args) const {
  return callattr(std::move(name), std::move(args), {});
}
AsyncResult Netref::call_async() const { return call_async({}, {}); }
AsyncResult Netref::call_async(std::vector<Any> args) const { return call_async(std::move(args), {}); }
AsyncResult Netref::callattr_async(std::string name) const {
  return callattr_async(std::move(name), {}, {});
}
AsyncResult Netref::callattr_async(std::string name, std::vector<Any> args) const {
  return callattr_async(std::move(name), std::move(args), {});
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
  return request(*this, Handler::kCmp, make_args(*this, std::move(other), Value(std::move(op))));
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

Task<std::vector<std::string>> Netref::inspect() const {
  Any r = co_await request(*this, Handler::kInspect, make_args(id_pack()));
  std::vector<std::string> names;
  for (const auto& item : r.items()) {
    // (name, doc) pairs
    if (item.is_tuple() && !item.items().empty()) names.push_back(expect_str(item.items()[0], "INSPECT"));
  }
  co_return names;
}

Task<bool> Netref::instance_check(brine::Value other_id_pack) const {
  Any r = co_await request(*this, Handler::kInstanceCheck, make_args(*this, std::move(other_id_pack)));
  co_return truthy(r);
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
  Any v = co_await *this;
  co_return v;
}

AsyncResult::Awaiter AsyncResult::operator co_await() const& {
  if (!p_) throw UsageError("empty AsyncResult");
  return Awaiter(p_);
}

AsyncResult::Awaiter AsyncResult::operator co_await() && {
  if (!p_) throw UsageError("empty AsyncResult");
  return Awaiter(std::move(p_));
}

AsyncResult::Awaiter::~Awaiter() {
  // Cancelled after the result woke us but before we ran: drop the queued resumption. (The
  // node unlinks itself if it was never woken.)
  if (node_.woken && !resumed_) p_->waiters.unschedule(node_.handle);
}

bool AsyncResult::Awaiter::await_ready() const { return p_->done; }

void AsyncResult::Awaiter::await_suspend(std::coroutine_handle<> h) { p_->waiters.push(&node_, h); }

Any AsyncResult::Awaiter::await_resume() {
  resumed_ = true;
  if (!p_->done) throw UsageError("AsyncResult resumed before it was ready");
  if (p_->error) std::rethrow_exception(p_->error);
  // The only owner left: nobody can look at the value again, so it moves out.
  if (p_.use_count() == 1) return std::move(p_->value);
  return p_->value;
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
