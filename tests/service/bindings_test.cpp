// Typed bindings through a real connection (tether client -> tether server over loopback TCP
// on one loop): conversions of every supported type, overflow and type errors naming the
// signature, Python's argument rules, kwargs, optional, containers, exceptions, async and
// blocking functions, callbacks nested both ways.

#include <cctype>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "service_fixture.hpp"
#include "tether/loop/time.hpp"
#include "tether/rpc/bind.hpp"
#include "tether/rpc/class.hpp"

namespace tether::testing {
namespace {

using brine::Value;
using Ints = std::tuple<std::int8_t, std::uint8_t, std::int16_t, std::uint16_t, std::int32_t, std::uint32_t,
                        std::int64_t, std::uint64_t>;

Service conversion_service() {
  Service svc("Conv");
  svc.expose("ints",
             [](std::int8_t a, std::uint8_t b, std::int16_t c, std::uint16_t d, std::int32_t e,
                std::uint32_t f, std::int64_t g, std::uint64_t h) { return Ints(a, b, c, d, e, f, g, h); });
  svc.expose("u8", [](std::uint8_t x) { return x; });
  svc.expose("i64", [](std::int64_t x) { return x; });
  svc.expose("u64", [](std::uint64_t x) { return x; });
  svc.expose(
      "add", [](std::int64_t a, std::int64_t b) { return a + b; }, arg_names("a", "b"));
  svc.expose("padd", [](std::int64_t a, std::int64_t b) { return a + b; });  // positional only
  svc.expose(
      "three", [](std::int64_t a, std::int64_t b, std::int64_t c) { return a * 100 + b * 10 + c; },
      arg_names("a", "b", "c"));
  svc.expose(
      "greet",
      [](std::string_view name, std::optional<std::string> title) {
        return (title ? *title + " " : std::string()) + std::string(name);
      },
      arg_names("name", "title"));
  svc.expose("scalars", [](bool b, double d, std::string s, Bytes by, const char* c) {
    return std::make_tuple(!b, d * 2, s + "!", by, std::string(c));
  });
  svc.expose("value", [](Value v) { return v; });
  svc.expose("any", [](Any a) { return a; });
  svc.expose("sum", [](const std::vector<std::int64_t>& v) {
    std::int64_t s = 0;
    for (auto x : v) s += x;
    return s;
  });
  svc.expose("invert", [](std::map<std::string, std::int64_t> m) {
    std::map<std::int64_t, std::string> out;
    for (auto& [k, v] : m) out[v] = k;
    return out;
  });
  svc.expose("nested",
             [](std::vector<std::vector<std::string>> v, std::unordered_map<std::int64_t, double> m) {
               std::size_t n = 0;
               for (auto& inner : v) n += inner.size();
               return std::make_pair(n, m.size());
             });
  svc.expose("pairs", [](std::pair<std::int64_t, std::string> p, std::tuple<bool, double> t) {
    return std::make_tuple(p.second, p.first, std::get<0>(t), std::get<1>(t));
  });
  svc.expose("none", []() {});
  svc.expose("maybe", [](bool give) -> std::optional<std::int64_t> {
    if (give) return 7;
    return std::nullopt;
  });
  return svc;
}

Task<void> conversions(std::uint16_t port) {
  Client c = co_await open_client(port);
  constexpr auto kU64Max = std::numeric_limits<std::uint64_t>::max();
  Ints want(-128, 255, -32768, 65535, std::numeric_limits<std::int32_t>::min(), 4294967295u,
            std::numeric_limits<std::int64_t>::min(), kU64Max);
  const std::int8_t i8 = -128;
  const std::uint8_t u8 = 255;
  const std::int16_t i16 = -32768;
  const std::uint16_t u16 = 65535;
  const std::uint32_t u32 = 4294967295u;
  Ints got = co_await c.root.callattr<Ints>("ints", i8, u8, i16, u16, std::numeric_limits<std::int32_t>::min(),
                                        u32, std::numeric_limits<std::int64_t>::min(), kU64Max);
  EXPECT_EQ(got, want);

  auto s = co_await c.root.callattr<std::tuple<bool, double, std::string, Bytes, std::string>>(
      "scalars", true, 1.25, std::string("hi"), Bytes(std::string_view("\x00\x01", 2)), "cstr");
  EXPECT_FALSE(std::get<0>(s));
  EXPECT_DOUBLE_EQ(std::get<1>(s), 2.5);
  EXPECT_EQ(std::get<2>(s), "hi!");
  EXPECT_EQ(std::get<3>(s).size(), 2u);
  EXPECT_EQ(std::get<4>(s), "cstr");
  // An int is accepted where a float is expected (as in Python).
  auto s2 = co_await c.root.callattr<std::tuple<bool, double, std::string, Bytes, std::string>>(
      "scalars", false, std::int64_t{3}, std::string(), Bytes(), "");
  EXPECT_DOUBLE_EQ(std::get<1>(s2), 6.0);

  Value complex = Value::tuple({Value(1), Value("x"), Value::frozenset({Value(2)}), Value()});
  Value v = co_await c.root.callattr<Value>("value", complex);
  EXPECT_EQ(v, complex);
  Any a = co_await c.root.callattr<Any>("any", std::string("through"));
  EXPECT_EQ(a.value().as_str(), "through");

  std::vector<std::int64_t> numbers{1, 2, 3, 4};  // no braced lists inside co_await (GCC 12)
  std::int64_t sum = co_await c.root.callattr<std::int64_t>("sum", numbers);
  EXPECT_EQ(sum, 10);
  std::map<std::string, std::int64_t> m{{"one", 1}, {"two", 2}};
  auto inv = co_await c.root.callattr<std::map<std::int64_t, std::string>>("invert", m);
  EXPECT_EQ(inv, (std::map<std::int64_t, std::string>{{1, "one"}, {2, "two"}}));
  std::vector<std::vector<std::string>> vv{{"a", "b"}, {}, {"c"}};
  std::unordered_map<std::int64_t, double> um{{1, 1.5}, {2, 2.5}};
  auto counts = co_await c.root.callattr<std::pair<std::int64_t, std::int64_t>>("nested", vv, um);
  EXPECT_EQ(counts, std::make_pair(std::int64_t{3}, std::int64_t{2}));
  auto p = co_await c.root.callattr<std::tuple<std::string, std::int64_t, bool, double>>(
      "pairs", std::make_pair(std::int64_t{5}, std::string("five")), std::make_tuple(true, 0.5));
  EXPECT_EQ(p, std::make_tuple(std::string("five"), std::int64_t{5}, true, 0.5));

  Any none = co_await c.root.callattr<Any>("none");
  EXPECT_TRUE(none.is_none());
  std::optional<std::int64_t> yes = co_await c.root.callattr<std::optional<std::int64_t>>("maybe", true);
  std::optional<std::int64_t> no = co_await c.root.callattr<std::optional<std::int64_t>>("maybe", false);
  EXPECT_EQ(yes, 7);
  EXPECT_EQ(no, std::nullopt);
  co_await close_client(c);
}

TEST_F(ServiceTest, ConvertsEverySupportedType) {
  Service svc = conversion_service();
  run(conversions(start(svc)));
}

Task<void> overflows(std::uint16_t port) {
  Client c = co_await open_client(port);
  Caught e = co_await expect_remote_error(c.root.callattr<std::int64_t>("u8", 256));
  EXPECT_EQ(e.type, "OverflowError");
  EXPECT_NE(e.message.find("u8(int) -> int: argument 1:"), std::string::npos) << e.message;
  e = co_await expect_remote_error(c.root.callattr<std::int64_t>("u8", -1));
  EXPECT_EQ(e.type, "OverflowError");
  auto parsed = brine::BigInt::parse("1180591620717411303424");  // 2**70
  brine::BigInt big = parsed.value();
  e = co_await expect_remote_error(c.root.callattr<std::int64_t>("i64", Value(big)));
  EXPECT_EQ(e.type, "OverflowError");
  e = co_await expect_remote_error(c.root.callattr<std::int64_t>("u64", -1));
  EXPECT_EQ(e.type, "OverflowError");
  // The largest values still fit.
  std::uint64_t u = co_await c.root.callattr<std::uint64_t>("u64", std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(u, std::numeric_limits<std::uint64_t>::max());
  co_await close_client(c);
}

TEST_F(ServiceTest, IntegerOverflowRaisesOverflowError) {
  Service svc = conversion_service();
  run(overflows(start(svc)));
}

// Every integer type: its min and max arrive intact, min-1 and max+1 are OverflowErrors naming
// the function and the argument. The bounds travel as BigInt values, so the check is the
// binding's, not the client's.
__extension__ typedef __int128 Wide;  // holds every bound of every 64-bit type, plus one

std::string decimal(Wide v) {
  if (v == 0) return "0";
  bool neg = v < 0;
  std::string digits;
  while (v != 0) {
    int d = static_cast<int>(v % 10);
    digits.push_back(static_cast<char>('0' + (d < 0 ? -d : d)));
    v /= 10;
  }
  if (neg) digits.push_back('-');
  return {digits.rbegin(), digits.rend()};
}

Value big_value(Wide v) { return Value(brine::BigInt::parse(decimal(v)).value()); }

template <typename T>
void expose_identity(Service& svc, const std::string& name) {
  svc.expose(name, [](T x) { return x; });
}

template <typename T>
Task<void> check_bounds(Client& c, const std::string& name) {
  const Wide lo = std::numeric_limits<T>::min();
  const Wide hi = std::numeric_limits<T>::max();
  Value got_lo = co_await c.root.callattr<Value>(name, big_value(lo));
  Value got_hi = co_await c.root.callattr<Value>(name, big_value(hi));
  EXPECT_EQ(got_lo.as_big_int().to_string(), decimal(lo)) << name;
  EXPECT_EQ(got_hi.as_big_int().to_string(), decimal(hi)) << name;
  for (Wide bad : {lo - 1, hi + 1}) {
    Caught e = co_await expect_remote_error(c.root.callattr<Value>(name, big_value(bad)));
    EXPECT_EQ(e.type, "OverflowError") << name << " " << decimal(bad);
    EXPECT_NE(e.message.find(name + "(int) -> int: argument 1:"), std::string::npos) << e.message;
  }
}

Task<void> every_integer_type(std::uint16_t port) {
  Client c = co_await open_client(port);
  co_await check_bounds<std::int8_t>(c, "i8");
  co_await check_bounds<std::uint8_t>(c, "u8");
  co_await check_bounds<std::int16_t>(c, "i16");
  co_await check_bounds<std::uint16_t>(c, "u16");
  co_await check_bounds<std::int32_t>(c, "i32");
  co_await check_bounds<std::uint32_t>(c, "u32");
  co_await check_bounds<std::int64_t>(c, "i64");
  co_await check_bounds<std::uint64_t>(c, "u64");
  co_await check_bounds<short>(c, "short_");
  co_await check_bounds<unsigned short>(c, "ushort");
  co_await check_bounds<int>(c, "int_");
  co_await check_bounds<unsigned>(c, "uint");
  co_await check_bounds<long>(c, "long_");
  co_await check_bounds<unsigned long>(c, "ulong");
  co_await check_bounds<long long>(c, "llong");
  co_await check_bounds<unsigned long long>(c, "ullong");
  co_await close_client(c);
}

TEST_F(ServiceTest, EveryIntegerTypeChecksBothBounds) {
  Service svc("Bounds");
  expose_identity<std::int8_t>(svc, "i8");
  expose_identity<std::uint8_t>(svc, "u8");
  expose_identity<std::int16_t>(svc, "i16");
  expose_identity<std::uint16_t>(svc, "u16");
  expose_identity<std::int32_t>(svc, "i32");
  expose_identity<std::uint32_t>(svc, "u32");
  expose_identity<std::int64_t>(svc, "i64");
  expose_identity<std::uint64_t>(svc, "u64");
  expose_identity<short>(svc, "short_");
  expose_identity<unsigned short>(svc, "ushort");
  expose_identity<int>(svc, "int_");
  expose_identity<unsigned>(svc, "uint");
  expose_identity<long>(svc, "long_");
  expose_identity<unsigned long>(svc, "ulong");
  expose_identity<long long>(svc, "llong");
  expose_identity<unsigned long long>(svc, "ullong");
  run(every_integer_type(start(svc)));
}

Task<void> type_errors(std::uint16_t port) {
  Client c = co_await open_client(port);
  Caught e = co_await expect_remote_error(c.root.callattr<std::int64_t>("add", 1, std::string("x")));
  EXPECT_EQ(e.type, "TypeError");
  EXPECT_EQ(e.message, "add(a: int, b: int) -> int: argument 2: expected int, got str");
  e = co_await expect_remote_error(c.root.callattr<std::int64_t>("padd", 1.5, 2));
  EXPECT_EQ(e.message, "padd(int, int) -> int: argument 1: expected int, got float");
  e = co_await expect_remote_error(c.root.callattr<std::int64_t>("sum", std::string("not a list")));
  EXPECT_EQ(e.type, "TypeError");
  EXPECT_NE(e.message.find("sum(list[int]) -> int: argument 1:"), std::string::npos) << e.message;
  std::vector<std::string> strings{"a"};
  e = co_await expect_remote_error(c.root.callattr<std::int64_t>("sum", strings));
  EXPECT_EQ(e.type, "TypeError");
  EXPECT_NE(e.message.find("expected int, got str"), std::string::npos) << e.message;
  e = co_await expect_remote_error(c.root.callattr<Any>("scalars", 1, 1.0, std::string(), Bytes(), ""));
  EXPECT_EQ(e.message, "scalars(bool, float, str, bytes, str) -> tuple: argument 1: expected bool, got int");
  co_await close_client(c);
}

TEST_F(ServiceTest, WrongTypesRaiseTypeErrorNamingTheSignature) {
  Service svc = conversion_service();
  run(type_errors(start(svc)));
}

Task<void> argument_rules(std::uint16_t port) {
  Client c = co_await open_client(port);
  Caught e = co_await expect_remote_error(c.root.callattr<std::int64_t>("add", 1));
  EXPECT_EQ(e.type, "TypeError");
  EXPECT_EQ(e.message, "add() missing 1 required positional argument: 'b'");
  e = co_await expect_remote_error(c.root.callattr<std::int64_t>("three"));
  EXPECT_EQ(e.message, "three() missing 3 required positional arguments: 'a', 'b', and 'c'");
  e = co_await expect_remote_error(c.root.callattr<std::int64_t>("three", 1));
  EXPECT_EQ(e.message, "three() missing 2 required positional arguments: 'b' and 'c'");
  e = co_await expect_remote_error(c.root.callattr<std::int64_t>("add", 1, 2, 3));
  EXPECT_EQ(e.message, "add() takes 2 positional arguments but 3 were given");
  e = co_await expect_remote_error(c.root.callattr<std::int64_t>("u8", 1, 2));
  EXPECT_EQ(e.message, "u8() takes 1 positional argument but 2 were given");
  e = co_await expect_remote_error(c.root.callattr<Any>("none", 1));
  EXPECT_EQ(e.message, "none() takes 0 positional arguments but 1 was given");
  e = co_await expect_remote_error(c.root.callattr<std::string>("greet", "a", "b", "c"));
  EXPECT_EQ(e.message, "greet() takes from 1 to 2 positional arguments but 3 were given");

  Kwargs kx;
  kx.emplace_back("x", Any(Value(1)));
  e = co_await expect_remote_error(c.root.callattr("add", make_args(1), kx));
  EXPECT_EQ(e.message, "add() got an unexpected keyword argument 'x'");
  Kwargs ka;
  ka.emplace_back("a", Any(Value(1)));
  e = co_await expect_remote_error(c.root.callattr("add", make_args(1, 2), ka));
  EXPECT_EQ(e.message, "add() got multiple values for argument 'a'");
  Kwargs kb;
  kb.emplace_back("b", Any(Value(2)));
  e = co_await expect_remote_error(c.root.callattr("padd", make_args(1), kb));
  EXPECT_EQ(e.message, "padd() got an unexpected keyword argument 'b'");

  // Keyword arguments by name, in any order.
  Any r = co_await c.root.callattr("add", make_args(40), kb);
  EXPECT_EQ(r.value().as_int64(), 42);
  Kwargs kcba;
  kcba.emplace_back("c", Any(Value(3)));
  kcba.emplace_back("a", Any(Value(1)));
  kcba.emplace_back("b", Any(Value(2)));
  std::vector<Any> no_args;
  r = co_await c.root.callattr("three", std::move(no_args), kcba);
  EXPECT_EQ(r.value().as_int64(), 123);
  // Optional parameters may be omitted, given as None, positionally or by keyword.
  std::string g1 = co_await c.root.callattr<std::string>("greet", "Ada");
  std::string g2 = co_await c.root.callattr<std::string>("greet", "Ada", Value());
  std::string g3 = co_await c.root.callattr<std::string>("greet", "Ada", "Dr");
  EXPECT_EQ(g1, "Ada");
  EXPECT_EQ(g2, "Ada");
  EXPECT_EQ(g3, "Dr Ada");
  Kwargs kt;
  kt.emplace_back("title", Any(Value("Prof")));
  r = co_await c.root.callattr("greet", make_args("Ada"), kt);
  EXPECT_EQ(r.value().as_str(), "Prof Ada");
  co_await close_client(c);
}

TEST_F(ServiceTest, PythonArgumentRulesAndKeywordArguments) {
  Service svc = conversion_service();
  run(argument_rules(start(svc)));
}

// --- containers passed by reference: a C++ client object iterated by the server -------------

struct Bag {
  std::vector<std::int64_t> items;
  std::map<std::string, std::int64_t> dict;
};

/// A client whose connection exports Bags as `classes` defines them.
Task<Client> bag_client(std::uint16_t port, std::shared_ptr<const ClassSet> classes) {
  ClientOptions opts;
  opts.connection.classes = std::move(classes);
  Client c = co_await open_client(port, opts);
  co_return c;
}

Task<void> by_reference(std::uint16_t port, std::shared_ptr<const ClassSet> classes) {
  Client c = co_await bag_client(port, std::move(classes));
  auto bag = std::make_shared<Bag>();
  bag->items = {5, 6, 7};
  // The client's object travels by reference; the server pulls it with __iter__ + BUFFITER.
  std::int64_t sum = co_await c.root.callattr<std::int64_t>("sum", bag);
  EXPECT_EQ(sum, 18);
  co_await close_client(c);
}

TEST_F(ServiceTest, SequencesArrivingByReferenceArePulled) {
  auto classes = std::make_shared<ClassSet>();
  classes->define<Bag>("Bag").iter([](const Bag& b) { return b.items; });
  Service svc = conversion_service();
  run(by_reference(start(svc), classes));
}

Task<void> dict_by_reference(std::uint16_t port, std::shared_ptr<const ClassSet> classes) {
  Client c = co_await bag_client(port, std::move(classes));
  auto bag = std::make_shared<Bag>();
  bag->dict = {{"x", 1}, {"y", 2}};
  auto inv = co_await c.root.callattr<std::map<std::int64_t, std::string>>("invert", bag);
  EXPECT_EQ(inv, (std::map<std::int64_t, std::string>{{1, "x"}, {2, "y"}}));
  co_await close_client(c);
}

TEST_F(ServiceTest, MappingsArrivingByReferenceArePulled) {
  auto classes = std::make_shared<ClassSet>();
  classes->define<Bag>("Bag")
      .iter([](const Bag& b) {
        std::vector<std::string> keys;
        for (auto& [k, v] : b.dict) keys.push_back(k);
        return keys;
      })
      .getitem([](const Bag& b, const std::string& k) -> std::optional<std::int64_t> {
        auto it = b.dict.find(k);
        if (it == b.dict.end()) return std::nullopt;
        return it->second;
      });
  Service svc = conversion_service();
  run(dict_by_reference(start(svc), classes));
}

// --- exceptions -------------------------------------------------------------------------

Task<void> exceptions(std::uint16_t port) {
  Client c = co_await open_client(port);
  struct Want {
    const char* fn;
    const char* module;
    const char* type;
    const char* message;
  };
  const Want wants[] = {
      {"invalid", "builtins", "ValueError", "bad value"},   {"range", "builtins", "IndexError", "too far"},
      {"overflow", "builtins", "OverflowError", "too big"}, {"key", "builtins", "KeyError", "missing"},
      {"runtime", "builtins", "RuntimeError", "boom"},      {"custom", "calc", "CalcError", "custom failure"},
  };
  for (const Want& w : wants) {
    Caught e = co_await expect_remote_error(c.root.callattr<Any>(w.fn));
    EXPECT_TRUE(e.thrown) << w.fn;
    EXPECT_EQ(e.module, w.module) << w.fn;
    EXPECT_EQ(e.type, w.type) << w.fn;
    EXPECT_EQ(e.message, w.message) << w.fn;
  }
  // The connection is still usable after every one of them.
  std::int64_t ok = co_await c.root.callattr<std::int64_t>("ok");
  EXPECT_EQ(ok, 1);
  // RemoteException keeps the raw args.
  bool got = false;
  try {
    Any r = co_await c.root.callattr<Any>("custom");
    (void)r;
  } catch (const RemoteException& e) {
    got = true;
    EXPECT_EQ(e.raw_args().size(), 2u);
    if (e.raw_args().size() == 2) {
      EXPECT_EQ(e.raw_args()[1], Value(42));
    }
  }
  EXPECT_TRUE(got);
  co_await close_client(c);
}

TEST_F(ServiceTest, CppExceptionsArriveAsPythonExceptions) {
  Service svc("Errors");
  svc.expose("invalid", []() -> std::int64_t { throw std::invalid_argument("bad value"); });
  svc.expose("range", []() -> std::int64_t { throw std::out_of_range("too far"); });
  svc.expose("overflow", []() -> std::int64_t { throw std::overflow_error("too big"); });
  svc.expose("key", []() -> std::int64_t { throw PyError("KeyError", "missing"); });
  svc.expose("runtime", []() -> std::int64_t { throw std::runtime_error("boom"); });
  svc.expose("custom", []() -> std::int64_t {
    throw PyError("calc", "CalcError", {Value("custom failure"), Value(42)});
  });
  svc.expose("ok", []() { return 1; });
  run(exceptions(start(svc)));
}

// --- async and blocking functions -------------------------------------------------------

Task<std::int64_t> twice_later(std::int64_t x) {
  co_await sleep(std::chrono::milliseconds(1));
  co_return x * 2;
}

Task<void> async_and_blocking(std::uint16_t port, std::int64_t loop_tid) {
  Client c = co_await open_client(port);
  std::int64_t r = co_await c.root.callattr<std::int64_t>("twice", 21);
  EXPECT_EQ(r, 42);
  Any v = co_await c.root.callattr<Any>("nothing_later");
  EXPECT_TRUE(v.is_none());
  std::int64_t worker_tid = co_await c.root.callattr<std::int64_t>("thread_id");
  EXPECT_NE(worker_tid, loop_tid);
  std::int64_t here = co_await c.root.callattr<std::int64_t>("loop_thread_id");
  EXPECT_EQ(here, loop_tid);
  std::string up = co_await c.root.callattr<std::string>("upper", std::string("abc"));
  EXPECT_EQ(up, "ABC");
  Caught e = co_await expect_remote_error(c.root.callattr<std::string>("blocking_fails"));
  EXPECT_EQ(e.type, "ValueError");
  // Pipelined: several blocking calls in flight at once.
  std::vector<AsyncResult> pending;
  for (int i = 0; i < 8; ++i)
    pending.push_back(c.root.callattr_async("upper", make_args(std::string(1, 'a' + i))));
  for (int i = 0; i < 8; ++i) {
    Any s = co_await pending[i].wait();
    EXPECT_EQ(s.value().as_str(), std::string(1, 'A' + i));
  }
  co_await close_client(c);
}

std::int64_t tid() {
  return static_cast<std::int64_t>(std::hash<std::thread::id>{}(std::this_thread::get_id()));
}

TEST_F(ServiceTest, AsyncAndBlockingFunctions) {
  Service svc("Workers");
  svc.expose_async("twice", &twice_later);
  svc.expose_async("nothing_later", []() -> Task<void> { co_await sleep(std::chrono::milliseconds(1)); });
  svc.expose_blocking("thread_id", []() { return tid(); });
  svc.expose("loop_thread_id", []() { return tid(); });
  svc.expose_blocking("upper", [](std::string s) {
    for (auto& ch : s) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    return s;
  });
  svc.expose_blocking("blocking_fails", []() -> std::string { throw std::invalid_argument("nope"); });
  run(async_and_blocking(start(svc), tid()));
}

// --- callbacks --------------------------------------------------------------------------

/// The client's callback: calls the server's bounce again with itself (coroutine API: no
/// nested loops on this side).
Task<std::int64_t> client_bounce(CallContext& ctx, std::int64_t n, ObjectPtr self) {
  Netref server = co_await ctx.peer_root();
  std::int64_t r = co_await server.callattr<std::int64_t>("bounce_async", n, self);
  co_return r + 1;
}

Task<void> nested_async(std::uint16_t port, int depth) {
  Client c = co_await open_client(port);
  ObjectPtr cb = make_function_object("client_bounce", &client_bounce);
  std::int64_t r = co_await c.root.callattr<std::int64_t>("bounce_async", depth, cb);
  EXPECT_EQ(r, 2 * depth);
  cb.reset();
  co_await close_client(c);
}

Task<std::int64_t> server_bounce_async(std::int64_t n, Netref cb) {
  if (n == 0) co_return 0;
  // Passing the client's own callable back: it arrives there as its local object.
  Any r = co_await cb.call(make_args(n - 1, cb));
  std::int64_t v = co_await from_any<std::int64_t>(std::move(r));
  co_return v + 1;
}

TEST_F(ServiceTest, CallbacksNestTwentyDeepWithCoroutines) {
  Service svc("Bounce");
  svc.expose_async("bounce_async", &server_bounce_async);
  run(nested_async(start(svc), 20));
}

/// The server side calls a std::function callback (a nested loop per level on the server).
Task<std::int64_t> client_bounce_sync(CallContext& ctx, std::int64_t n, ObjectPtr self) {
  Netref server = co_await ctx.peer_root();
  std::int64_t r = co_await server.callattr<std::int64_t>("bounce_sync", n, self, self);
  co_return r + 1;
}

Task<void> nested_sync_server(std::uint16_t port, int depth) {
  Client c = co_await open_client(port);
  ObjectPtr cb = make_function_object("client_bounce_sync", &client_bounce_sync);
  std::int64_t r = co_await c.root.callattr<std::int64_t>("bounce_sync", depth, cb, cb);
  EXPECT_EQ(r, 2 * depth);
  // A C++ std::function passed from the client becomes a callable on the server.
  std::function<std::int64_t(std::int64_t)> square = [](std::int64_t x) { return x * x; };
  std::int64_t sq = co_await c.root.callattr<std::int64_t>("apply", square, 9);
  EXPECT_EQ(sq, 81);
  // ... and the server's returned std::function is callable from here.
  Any adder = co_await c.root.callattr<Any>("adder", 10);
  EXPECT_TRUE(adder.is_netref());
  if (adder.is_netref()) {
    Any eleven = co_await adder.netref().call(make_args(1));
    EXPECT_EQ(eleven.value().as_int64(), 11);
  }
  // The callback's exception reaches the server and comes back to us.
  std::function<std::int64_t(std::int64_t)> failing = [](std::int64_t) -> std::int64_t {
    throw std::invalid_argument("callback refused");
  };
  Caught e = co_await expect_remote_error(c.root.callattr<std::int64_t>("apply", failing, 1));
  EXPECT_EQ(e.type, "ValueError");
  EXPECT_EQ(e.message, "callback refused");
  cb.reset();
  co_await close_client(c);
}

TEST_F(ServiceTest, StdFunctionCallbacksNestWithNestedLoops) {
  Service svc("Bounce");
  svc.expose("bounce_sync", [](std::int64_t n, std::function<std::int64_t(std::int64_t, Any)> cb, Any self) {
    if (n == 0) return std::int64_t{0};
    return cb(n - 1, self) + 1;
  });
  svc.expose("apply", [](std::function<std::int64_t(std::int64_t)> f, std::int64_t x) { return f(x); });
  svc.expose("adder", [](std::int64_t k) {
    return std::function<std::int64_t(std::int64_t)>([k](std::int64_t x) { return x + k; });
  });
  run(nested_sync_server(start(svc), 12));
}

/// A blocking function (on a worker thread) calling the client back.
Task<void> callback_from_worker(std::uint16_t port) {
  Client c = co_await open_client(port);
  std::vector<std::string> seen;
  std::function<std::string(std::string)> shout = [&seen](std::string s) {
    seen.push_back(s);
    return s + "!";
  };
  std::string r = co_await c.root.callattr<std::string>("relay", shout, std::string("hey"));
  EXPECT_EQ(r, "hey!!");
  EXPECT_EQ(seen, (std::vector<std::string>{"hey", "hey!"}));
  co_await close_client(c);
}

TEST_F(ServiceTest, BlockingFunctionsCanCallCallbacks) {
  Service svc("Relay");
  svc.expose_blocking("relay", [](std::function<std::string(std::string)> cb, std::string s) {
    std::string once = cb(s);
    return cb(once);
  });
  run(callback_from_worker(start(svc)));
}

}  // namespace
}  // namespace tether::testing
