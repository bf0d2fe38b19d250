#include <fmt/format.h>

#include <cerrno>
#include <new>
#include <stdexcept>

#include "interop_objects.hpp"
#include "tether/base/error.hpp"
#include "tether/rpc/convert.hpp"

namespace tether::interop {

using brine::Value;

namespace {

std::int64_t int_arg(const std::vector<Any>& a, std::size_t i) {
  if (i >= a.size()) throw PyError("TypeError", fmt::format("missing argument {}", i + 1));
  if (!a[i].is_value() || !a[i].value().is_int64()) {
    throw PyError("TypeError", fmt::format("argument {}: expected int, got {}", i + 1, a[i].repr()));
  }
  return a[i].value().as_int64();
}

std::string str_arg(const std::vector<Any>& a, std::size_t i) {
  if (i >= a.size() || !a[i].is_value() || !a[i].value().is_str()) {
    throw PyError("TypeError", fmt::format("argument {}: expected str", i + 1));
  }
  return a[i].value().as_str();
}

/// An iterator over 0..n-1 (Python's iterator protocol: __next__ raises StopIteration).
std::shared_ptr<TableObject> make_range_iter(std::int64_t n, LiveObjects& live) {
  auto it = std::make_shared<TableObject>("tether.RangeIterator", std::vector<std::string>{"__iter__", "__next__"});
  live.track(it);
  auto pos = std::make_shared<std::int64_t>(0);
  std::weak_ptr<TableObject> weak = it;
  it->method("__next__", [pos, n](CallContext&, std::vector<Any>, Kwargs) -> Task<Any> {
    if (*pos >= n) throw StopIteration();
    co_return Any(Value((*pos)++ * 10));
  });
  it->method("__iter__", [weak](CallContext&, std::vector<Any>, Kwargs) -> Task<Any> {
    co_return Any(std::static_pointer_cast<Object>(weak.lock()));
  });
  return it;
}

/// A read-only sequence [0, 10, 20, ...] of length n: len(), [i], iter(), `in`.
std::shared_ptr<TableObject> make_container(std::int64_t n, const std::shared_ptr<LiveObjects>& live) {
  auto c = std::make_shared<TableObject>(
      "tether.Container", std::vector<std::string>{"__len__", "__getitem__", "__iter__", "__contains__"});
  live->track(c);
  c->method("__len__", [n](CallContext&, std::vector<Any>, Kwargs) -> Task<Any> { co_return Any(Value(n)); });
  c->method("__getitem__", [n](CallContext&, std::vector<Any> a, Kwargs) -> Task<Any> {
    std::int64_t i = int_arg(a, 0);
    if (i < 0) i += n;
    if (i < 0 || i >= n) throw std::out_of_range("container index out of range");
    co_return Any(Value(i * 10));
  });
  c->method("__iter__", [n, live](CallContext&, std::vector<Any>, Kwargs) -> Task<Any> {
    co_return Any(std::static_pointer_cast<Object>(make_range_iter(n, *live)));
  });
  c->method("__contains__", [n](CallContext&, std::vector<Any> a, Kwargs) -> Task<Any> {
    std::int64_t v = int_arg(a, 0);
    co_return Any(Value(v >= 0 && v % 10 == 0 && v / 10 < n));
  });
  return c;
}

Task<Any> call_netref(Netref fn, std::vector<Any> args) {
  Any r = co_await fn.call(std::move(args));
  co_return r;
}

}  // namespace

std::shared_ptr<TableObject> make_interop_root(ServerView view, std::shared_ptr<LiveObjects> live) {
  auto root = std::make_shared<TableObject>("tether.InteropService");
  root->method("add", [](CallContext&, std::vector<Any> a, Kwargs kw) -> Task<Any> {
    std::int64_t x = int_arg(a, 0);
    std::int64_t y = a.size() > 1 ? int_arg(a, 1) : 0;
    for (auto& [k, v] : kw) {
      if (k == "b") y = int_arg(make_args(v), 0);
    }
    co_return Any(Value(x + y));
  });
  root->method("echo", [](CallContext&, std::vector<Any> a, Kwargs) -> Task<Any> { co_return a.at(0); });
  root->method("fail", [](CallContext&, std::vector<Any> a, Kwargs) -> Task<Any> {
    // fail(kind, message): throws the C++ exception named by `kind`; vinegar.cpp maps it to
    // a Python builtin (docs/python-interop.md, "Exceptions"). fail_kinds() lists the kinds.
    std::string kind = str_arg(a, 0);
    std::string msg = str_arg(a, 1);
    if (kind == "value") throw std::invalid_argument(msg);
    if (kind == "domain") throw std::domain_error(msg);
    if (kind == "index") throw std::out_of_range(msg);
    if (kind == "key") throw PyError("KeyError", msg);
    if (kind == "type") throw PyError("TypeError", msg);
    if (kind == "overflow") throw std::overflow_error(msg);
    if (kind == "underflow") throw std::underflow_error(msg);
    if (kind == "bad_alloc") throw std::bad_alloc();
    if (kind == "timeout") throw Timeout(msg);
    if (kind == "disconnected") throw Disconnected(msg);
    if (kind == "limit") throw LimitExceeded(msg);
    if (kind == "protocol") throw ProtocolError(msg);
    if (kind == "cancelled") throw Cancelled(msg);
    if (kind == "usage") throw UsageError(msg);
    if (kind == "io") throw IoError(EPIPE, msg);
    if (kind == "stop") throw StopIteration();
    if (kind == "runtime") throw std::runtime_error(msg);
    if (kind == "logic") throw std::logic_error(msg);
    if (kind == "not_std") throw 42;
    if (kind == "custom") throw PyError("calc", "CalcError", {Value(msg), Value(7)});
    co_return Any();
  });
  root->method("fail_kinds", [](CallContext&, std::vector<Any>, Kwargs) -> Task<Any> {
    co_return to_any(std::vector<std::string>{"value", "domain", "index", "key", "type", "overflow", "underflow",
                                              "bad_alloc", "timeout", "disconnected", "limit", "protocol",
                                              "cancelled", "usage", "io", "stop", "runtime", "logic", "not_std",
                                              "custom"});
  });
  root->method("call", [](CallContext&, std::vector<Any> a, Kwargs) -> Task<Any> {
    if (a.empty() || !a[0].is_netref()) throw PyError("TypeError", "call(fn, *args): fn must be a callable");
    Netref fn = a[0].netref();
    std::vector<Any> rest(a.begin() + 1, a.end());
    Any r = co_await call_netref(fn, std::move(rest));
    co_return r;
  });
  root->method("bounce", [](CallContext&, std::vector<Any> a, Kwargs) -> Task<Any> {
    // bounce(fn, n): 0 if n == 0 else fn(n - 1) + 1 — fn usually calls bounce again.
    Netref fn = a.at(0).netref();
    std::int64_t n = int_arg(a, 1);
    if (n == 0) co_return Any(Value(0));
    Any r = co_await call_netref(fn, make_args(Value(n - 1)));
    co_return Any(Value(r.value().as_int64() + 1));
  });
  root->method("sum_list", [](CallContext&, std::vector<Any> a, Kwargs) -> Task<Any> {
    std::vector<std::int64_t> items = co_await from_any<std::vector<std::int64_t>>(a.at(0));
    std::int64_t s = 0;
    for (auto v : items) s += v;
    co_return Any(Value(s));
  });
  root->method("dict_items", [](CallContext&, std::vector<Any> a, Kwargs) -> Task<Any> {
    std::map<std::string, std::int64_t> m = co_await from_any<std::map<std::string, std::int64_t>>(a.at(0));
    co_return to_any(m);
  });
  root->method("container", [live](CallContext&, std::vector<Any> a, Kwargs) -> Task<Any> {
    co_return Any(std::static_pointer_cast<Object>(make_container(int_arg(a, 0), live)));
  });
  root->method("make_bytes", [](CallContext&, std::vector<Any> a, Kwargs) -> Task<Any> {
    // n bytes of a fixed pseudo-random pattern (incompressible enough to exercise big frames)
    std::int64_t n = int_arg(a, 0);
    std::string s(static_cast<std::size_t>(n), '\0');
    std::uint32_t x = 2463534242u;
    for (auto& c : s) {
      x ^= x << 13;
      x ^= x >> 17;
      x ^= x << 5;
      c = static_cast<char>(x);
    }
    co_return Any(Value(Bytes(std::move(s))));
  });
  root->method("bytes_len", [](CallContext&, std::vector<Any> a, Kwargs) -> Task<Any> {
    if (!a.at(0).is_value() || !a[0].value().is_bytes()) throw PyError("TypeError", "expected bytes");
    co_return Any(Value(static_cast<std::int64_t>(a[0].value().as_bytes().size())));
  });
  // --- what the server knows about connections (tests/interop/test_python_client.py)
  root->method("last_closed_exported", [view](CallContext&, std::vector<Any>, Kwargs) -> Task<Any> {
    if (!view.last_closed_exported) throw PyError("NotImplementedError", "no server view");
    co_return Any(Value(static_cast<std::int64_t>(view.last_closed_exported())));
  });
  root->method("connection_id", [view](CallContext&, std::vector<Any>, Kwargs) -> Task<Any> {
    co_return Any(Value(view.connection_id));
  });
  root->method("closed_connections", [view](CallContext&, std::vector<Any>, Kwargs) -> Task<Any> {
    if (!view.closed_connections) throw PyError("NotImplementedError", "no server view");
    co_return Any(Value(static_cast<std::int64_t>(view.closed_connections())));
  });
  root->method("exported_at_close", [view](CallContext&, std::vector<Any> a, Kwargs) -> Task<Any> {
    // exported_at_close(id): connection id's export count when its close was handled, or
    // None while it is open.
    if (!view.exported_at_close) throw PyError("NotImplementedError", "no server view");
    std::optional<std::size_t> n = view.exported_at_close(int_arg(a, 0));
    co_return n ? Any(Value(static_cast<std::int64_t>(*n))) : Any();
  });
  root->method("live_objects", [view](CallContext&, std::vector<Any> a, Kwargs) -> Task<Any> {
    // live_objects(id=this connection): objects connection id's root made that are alive.
    if (!view.live_objects_of) throw PyError("NotImplementedError", "no server view");
    std::int64_t id = a.empty() ? view.connection_id : int_arg(a, 0);
    std::optional<std::size_t> n = view.live_objects_of(id);
    if (!n) throw PyError("KeyError", fmt::format("no connection {}", id));
    co_return Any(Value(static_cast<std::int64_t>(*n)));
  });
  root->method("exported_count", [view](CallContext&, std::vector<Any>, Kwargs) -> Task<Any> {
    // This connection's export table size now (the root and every netref the client holds).
    if (!view.connection_stats) throw PyError("NotImplementedError", "no server view");
    co_return Any(Value(static_cast<std::int64_t>(view.connection_stats().exported)));
  });
  root->method("channel_stats", [view](CallContext&, std::vector<Any>, Kwargs) -> Task<Any> {
    // This connection's ChannelStats as ((name, value), ...): dict(root.channel_stats()).
    if (!view.channel_stats) throw PyError("NotImplementedError", "no server view");
    ChannelStats s = view.channel_stats();
    auto i = [](std::uint64_t v) { return Value(static_cast<std::int64_t>(v)); };
    co_return Any(Value::make_tuple(
        Value::make_tuple(Value("frames_in"), i(s.frames_in)), Value::make_tuple(Value("frames_out"), i(s.frames_out)),
        Value::make_tuple(Value("payload_bytes_in"), i(s.payload_bytes_in)),
        Value::make_tuple(Value("payload_bytes_out"), i(s.payload_bytes_out)),
        Value::make_tuple(Value("wire_bytes_in"), i(s.wire_bytes_in)),
        Value::make_tuple(Value("wire_bytes_out"), i(s.wire_bytes_out)),
        Value::make_tuple(Value("compressed_in"), i(s.compressed_in)),
        Value::make_tuple(Value("compressed_out"), i(s.compressed_out)),
        Value::make_tuple(Value("empty_frames_in"), i(s.empty_frames_in)),
        Value::make_tuple(Value("spliced_out"), i(s.spliced_out))));
  });
  root->data("answer", Any(Value(42)));
  return root;
}

}  // namespace tether::interop
