// Callables passed where an argument is expected (issue 21, footgun 1): a lambda with or
// without captures, a function pointer, a functor and a std::function each reach the peer as a
// function it can call, with the signature deduced as for Service::expose. Nothing that is a
// pointer or a callable turns into True on the way (checked at compile time below); a generic
// lambda is refused with one message (tests/rpc/compile_fail/generic_lambda.cpp, run by CTest).

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <string>
#include <type_traits>

#include "rpc_fixture.hpp"
#include "tether/rpc/convert.hpp"

namespace tether::testing {
namespace {

std::int64_t twice(std::int64_t i) { return 2 * i; }

struct AddTen {
  std::int64_t operator()(std::int64_t i) const { return i + 10; }
};

auto captureless = [](std::int64_t i) { return i + 1; };

// ---- compile time: no pointer or callable becomes a bool
static_assert(!std::is_constructible_v<brine::Value, decltype(captureless)>);
static_assert(!std::is_constructible_v<brine::Value, std::int64_t (*)(std::int64_t)>);
static_assert(!std::is_constructible_v<brine::Value, AddTen>);
static_assert(!std::is_constructible_v<brine::Value, int*>);
static_assert(!std::is_constructible_v<brine::Value, const void*>);
static_assert(!std::is_constructible_v<Any, decltype(captureless)>);
static_assert(!std::is_constructible_v<Any, std::int64_t (*)(std::int64_t)>);
static_assert(std::is_constructible_v<brine::Value, bool>);
static_assert(std::is_constructible_v<brine::Value, const char*>);  // a C string is a str

Task<std::vector<std::int64_t>> call_back_each(Connection& c) {
  Netref root = co_await c.root();
  std::vector<std::int64_t> out;
  const std::int64_t base = 100;
  // TestRoot.call(fn, x) calls fn(x) on our side.
  std::int64_t a = co_await root.callattr<std::int64_t>("call", captureless, 1);
  out.push_back(a);
  std::int64_t b = co_await root.callattr<std::int64_t>("call", [base](std::int64_t i) { return base + i; }, 2);
  out.push_back(b);
  std::int64_t d = co_await root.callattr<std::int64_t>("call", &twice, 3);
  out.push_back(d);
  std::int64_t e = co_await root.callattr<std::int64_t>("call", twice, 4);
  out.push_back(e);
  std::int64_t f = co_await root.callattr<std::int64_t>("call", AddTen{}, 5);
  out.push_back(f);
  std::int64_t g =
      co_await root.callattr<std::int64_t>("call", std::function<std::int64_t(std::int64_t)>(captureless), 6);
  out.push_back(g);
  // A lambda whose result is a string: the conversion is deduced from its signature.
  std::string h = co_await root.callattr<std::string>("call", [](std::string s) { return s + "!"; }, "hi");
  out.push_back(static_cast<std::int64_t>(h.size()));
  co_return out;
}

TEST(CallableArgs, EveryKindOfNonGenericCallableReachesThePeerAsAFunction) {
  EventLoop loop;
  auto p = make_rpc_pair(loop);
  auto got = loop.run_until_complete(with_timeout(std::chrono::seconds(20), call_back_each(*p.client)));
  EXPECT_EQ(got, (std::vector<std::int64_t>{2, 102, 6, 8, 15, 7, 3}));
}

TEST(CallableArgs, ToAnyOfALambdaIsALocalFunctionObject) {
  Any a = to_any([](std::int64_t i) { return i; });
  ASSERT_TRUE(a.is_local());
  EXPECT_EQ(a.object()->type_name(), "builtins.function");
}

}  // namespace
}  // namespace tether::testing
