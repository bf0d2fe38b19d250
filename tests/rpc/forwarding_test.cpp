// A Netref lent onward to another connection (RPyC over RPyC, upstream test_rpyc_over_rpyc):
// three parties on one loop. The *origin* serves a TestRoot; the *middle* holds a client
// connection to the origin and another to the *far* end; the far end's root probes whatever
// the middle hands it. Every operation the far end performs on the object reaches the origin
// through the middle, errors come back as the origin raised them, a reference that comes home
// is the original again, and releasing it at the far end releases it at the origin.
//
// No wall-clock waits: a round trip on a connection proves the peer read what came before it.

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "rpc_fixture.hpp"
#include "tether/rpc/convert.hpp"
#include "tether/rpc/remote_exception.hpp"

namespace tether::testing {
namespace {

using brine::Value;
using Strings = std::vector<std::string>;

/// The far end's root: probe(x) performs operations on x and reports them; keep(x) holds x,
/// drop() lets it go, back(x) returns x, call_with(x, fn) calls fn(x).
class Prober : public Object {
 public:
  [[nodiscard]] std::string type_name() const override { return "tests.Prober"; }
  [[nodiscard]] bool has_attr(std::string_view n) const override {
    return n == "exposed_probe" || n == "exposed_probe_kept" || n == "exposed_keep" || n == "exposed_drop" ||
           n == "exposed_back";
  }
  Any get_attr(CallContext&, std::string_view name) override { return method_of(this, name); }
  Task<Any> call_attr(CallContext& ctx, std::string_view name, std::vector<Any> args, Kwargs kwargs) override;

  Netref kept;
};

Task<Any> probe(Netref x) {
  std::vector<Any> out;
  Any answer = co_await x.getattr("answer");
  out.emplace_back(Value(answer.repr()));
  Any sum = co_await x.callattr("add", make_args(Value(2), Value(3)));
  out.emplace_back(Value(sum.repr()));
  std::string r = co_await x.repr();
  out.emplace_back(Value(r));
  std::vector<std::string> names = co_await x.dir();
  out.emplace_back(Value(fmt::format("{}", fmt::join(names, ","))));
  std::string raised = "nothing raised";
  try {
    (void)co_await x.callattr("fail", make_args(Value("far away")));
  } catch (const RemoteException& e) {
    raised = e.type_name() + ": " + (e.args().empty() ? std::string() : e.args().front());
  }
  out.emplace_back(Value(raised));
  // A callable of the origin, reached as an attribute and called from here.
  Netref add = co_await x.attr("add");
  Any called = co_await add.call(make_args(Value(40), Value(2)));
  out.emplace_back(Value(called.repr()));
  co_return Any::tuple(std::move(out));
}

Task<Any> Prober::call_attr(CallContext&, std::string_view name, std::vector<Any> args, Kwargs) {
  if (name == "exposed_probe") {
    Any r = co_await probe(args.at(0).netref());
    co_return r;
  }
  if (name == "exposed_probe_kept") {
    Any r = co_await probe(kept);
    co_return r;
  }
  if (name == "exposed_keep") {
    kept = args.at(0).netref();
    co_return Any();
  }
  if (name == "exposed_drop") {
    kept = Netref();
    co_return Any();
  }
  if (name == "exposed_back") co_return args.at(0);
  throw attribute_error(name);
}

class ForwardingTest : public LoopTest {
 public:
  void SetUp() override {
    LoopTest::SetUp();  // counts the live tasks before the connections start theirs
    to_origin_ = connect_pair(loop_, origin_root_);
    to_far_ = connect_pair(loop_, prober_);
  }

  void TearDown() override {
    // The connections go before the loop's checks (LoopTest counts watchers and tasks).
    to_far_ = {};
    to_origin_ = {};
    LoopTest::TearDown();
  }

  Connection& origin_side() { return *to_origin_.client; }  // the middle's connection to the origin
  Connection& far_side() { return *to_far_.client; }        // the middle's connection to the far end
  Connection& origin() { return *to_origin_.server; }

  /// Round trips on both of the middle's connections until `done` holds (bounded: each
  /// round lets every DEL in flight take one more hop).
  Task<bool> settle(std::function<bool()> done) {
    for (int i = 0; i < 20 && !done(); ++i) {
      co_await far_side().ping();
      co_await origin_side().ping();
    }
    co_return done();
  }

  std::shared_ptr<TestRoot> origin_root_ = std::make_shared<TestRoot>();
  std::shared_ptr<Prober> prober_ = std::make_shared<Prober>();
  ConnectionPair to_origin_;
  ConnectionPair to_far_;
};

Task<Strings> probe_through_middle(Connection& origin_side, Connection& far_side) {
  Netref origin_root = co_await origin_side.root();
  Netref made = co_await origin_root.attr("make");  // a bound method of the origin's root
  Any obj = co_await made.call();                    // a fresh TestRoot on the origin
  Netref far_root = co_await far_side.root();
  Any report = co_await far_root.callattr("probe", make_args(obj));
  Strings out;
  for (const Any& item : std::move(report).take_items()) out.push_back(item.value().as_str());
  std::string direct = co_await obj.netref().repr();
  out.push_back(direct == out.at(2) ? "same repr" : "repr differs: " + direct);
  std::vector<std::string> names = co_await obj.netref().dir();
  out.push_back(fmt::format("{}", fmt::join(names, ",")) == out.at(3) ? "same dir" : "dir differs");
  co_return out;
}

TEST_F(ForwardingTest, EveryOperationOfTheFarEndReachesTheOrigin) {
  const Strings got = run(probe_through_middle(origin_side(), far_side()));
  ASSERT_EQ(got.size(), 8u);
  EXPECT_EQ(got[0], "42");
  EXPECT_EQ(got[1], "5");
  EXPECT_NE(got[2].find("tests.TestRoot"), std::string::npos) << got[2];
  EXPECT_EQ(got[7], "same dir");
  EXPECT_EQ(got[4], "ValueError: far away");
  EXPECT_EQ(got[5], "42");
  EXPECT_EQ(got[6], "same repr");
}

Task<Strings> round_trip_home(Connection& origin_side, Connection& far_side) {
  Netref origin_root = co_await origin_side.root();
  Netref far_root = co_await far_side.root();
  Strings out;
  // Lent to the far end and handed back: the middle gets its own proxy of the origin again.
  Any back = co_await far_root.callattr("back", make_args(origin_root));
  Netref again = co_await from_any<Netref>(std::move(back));
  out.push_back(again.same_object(origin_root) ? "same proxy" : "another object");
  // Sent home over the origin's own connection: the origin sees its root, not a forwarder.
  Any echoed = co_await origin_root.callattr("echo", make_args(origin_root));
  out.push_back(echoed.is_netref() && echoed.netref().same_object(origin_root) ? "home" : "lost");
  co_return out;
}

TEST_F(ForwardingTest, AReferenceThatComesBackIsTheOriginalAgain) {
  EXPECT_EQ(run(round_trip_home(origin_side(), far_side())), (Strings{"same proxy", "home"}));
}

Task<void> lend_and_release(ForwardingTest* t, Connection& origin_side, Connection& far_side, Connection& origin,
                            std::shared_ptr<Prober> prober, std::vector<std::size_t>& exported) {
  Netref origin_root = co_await origin_side.root();
  Netref far_root = co_await far_side.root();
  exported.push_back(origin.stats().exported);  // the root only
  {
    Netref maker = co_await origin_root.attr("make");
    Any made = co_await maker.call();
    Any ignored = co_await far_root.callattr("keep", make_args(made));
  }
  // The middle dropped its own copies; the far end still holds the object: alive at the origin.
  auto never = [] { return false; };
  (void)co_await t->settle(never);
  exported.push_back(origin.stats().exported);
  exported.push_back(prober->kept.valid() ? 1 : 0);
  Any ignored = co_await far_root.callattr("drop");
  const std::size_t base = exported.front();
  auto gone = [&] { return origin.stats().exported == base; };
  bool released = co_await t->settle(gone);
  exported.push_back(released ? origin.stats().exported : 9999);
  exported.push_back(far_side.stats().exported);  // the middle lends the far end nothing now
}

TEST_F(ForwardingTest, ReleasingAtTheFarEndReleasesAtTheOrigin) {
  std::vector<std::size_t> exported;
  run(lend_and_release(this, origin_side(), far_side(), origin(), prober_, exported));
  ASSERT_EQ(exported.size(), 5u);
  EXPECT_EQ(exported[1], exported[0] + 1) << "the made object lives while the far end holds it";
  EXPECT_EQ(exported[2], 1u);
  EXPECT_EQ(exported[3], exported[0]) << "released end to end";
  EXPECT_EQ(exported[4], 0u);
}

Task<std::string> orphaned(Connection& origin_side, Connection& far_side, ConnectionPair& to_origin) {
  Netref origin_root = co_await origin_side.root();
  Netref far_root = co_await far_side.root();
  Any kept = co_await far_root.callattr("keep", make_args(origin_root));
  (void)kept;
  // The origin goes away while the far end holds its object: the far end's operations fail
  // with a clear error, nothing hangs.
  to_origin.server.reset();
  std::string what = "no error";
  try {
    (void)co_await far_root.callattr("probe_kept");
  } catch (const Error& e) {
    what = e.what();
  }
  co_return what;
}

TEST_F(ForwardingTest, AFarEndLeftHoldingAVanishedOriginsObjectGetsAClearError) {
  const std::string what = run(orphaned(origin_side(), far_side(), to_origin_));
  EXPECT_NE(what, "no error");
}

}  // namespace
}  // namespace tether::testing
