#include <fmt/format.h>

#include <stdexcept>

#include "interop_objects.hpp"
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
std::shared_ptr<TableObject> make_range_iter(std::int64_t n) {
  auto it = std::make_shared<TableObject>("tether.RangeIterator", std::vector<std::string>{"__iter__", "__next__"});
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
std::shared_ptr<TableObject> make_container(std::int64_t n) {
  auto c = std::make_shared<TableObject>(
      "tether.Container", std::vector<std::string>{"__len__", "__getitem__", "__iter__", "__contains__"});
  c->method("__len__", [n](CallContext&, std::vector<Any>, Kwargs) -> Task<Any> { co_return Any(Value(n)); });
  c->method("__getitem__", [n](CallContext&, std::vector<Any> a, Kwargs) -> Task<Any> {
    std::int64_t i = int_arg(a, 0);
    if (i < 0) i += n;
    if (i < 0 || i >= n) throw std::out_of_range("container index out of range");
    co_return Any(Value(i * 10));
  });
  c->method("__iter__", [n](CallContext&, std::vector<Any>, Kwargs) -> Task<Any> {
    co_return Any(std::static_pointer_cast<Object>(make_range_iter(n)));
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

std::shared_ptr<TableObject> make_interop_root(std::function<std::size_t()> last_closed_exported) {
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
    std::string kind = str_arg(a, 0);
    std::string msg = str_arg(a, 1);
    if (kind == "value") throw std::invalid_argument(msg);
    if (kind == "index") throw std::out_of_range(msg);
    if (kind == "key") throw PyError("KeyError", msg);
    if (kind == "overflow") throw std::overflow_error(msg);
    if (kind == "runtime") throw std::runtime_error(msg);
    if (kind == "custom") throw PyError("calc", "CalcError", {Value(msg), Value(7)});
    co_return Any();
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
  root->method("container", [](CallContext&, std::vector<Any> a, Kwargs) -> Task<Any> {
    co_return Any(std::static_pointer_cast<Object>(make_container(int_arg(a, 0))));
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
  root->method("last_closed_exported", [last_closed_exported](CallContext&, std::vector<Any>, Kwargs) -> Task<Any> {
    co_return Any(Value(static_cast<std::int64_t>(last_closed_exported())));
  });
  root->data("answer", Any(Value(42)));
  return root;
}

}  // namespace tether::interop
