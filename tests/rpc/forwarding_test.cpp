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
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "rpc_fixture.hpp"
#include "tether/loop/task_group.hpp"
#include "tether/loop/time.hpp"
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
           n == "exposed_back" || n == "exposed_poke";
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
  // Keyword arguments, through CALLATTR and through CALL of the bound method.
  Kwargs b5;
  b5.emplace_back("b", Any(Value(5)));
  Any kw_attr = co_await x.callattr("add", make_args(Value(2)), std::move(b5));
  Kwargs b2;
  b2.emplace_back("b", Any(Value(2)));
  Any kw_call = co_await add.call(make_args(Value(40)), std::move(b2));
  out.emplace_back(Value(kw_attr.repr() + " " + kw_call.repr()));
  // STR (the origin's differs from its REPR), HASH and INSPECT, compared by the caller with
  // what the origin answers directly.
  std::string text = co_await x.str();
  out.emplace_back(Value(text));
  std::int64_t h = co_await x.hash();
  out.emplace_back(Value(std::to_string(h)));
  std::vector<std::string> inspected = co_await x.inspect();
  out.emplace_back(Value(fmt::format("{}", fmt::join(inspected, ","))));
  co_return Any::tuple(std::move(out));
}

/// SETATTR, GETATTR and DELATTR of one attribute of x, and a GETATTR after the delete:
/// "<value read> <what the last read raised>".
Task<Any> poke(Netref x) {
  co_await x.setattr("colour", Any(Value("red")));
  Any got = co_await x.getattr("colour");
  co_await x.delattr("colour");
  std::string after = "nothing raised";
  try {
    (void)co_await x.getattr("colour");
  } catch (const RemoteException& e) {
    after = e.type_name();
  }
  co_return Any(Value(got.value().as_str() + " " + after));
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
  if (name == "exposed_poke") {
    Any r = co_await poke(args.at(0).netref());
    co_return r;
  }
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
  Any obj = co_await made.call();                   // a fresh TestRoot on the origin
  Netref far_root = co_await far_side.root();
  Any report = co_await far_root.callattr("probe", make_args(obj));
  Strings out;
  for (const Any& item : std::move(report).take_items()) out.push_back(item.value().as_str());
  std::string direct = co_await obj.netref().repr();
  out.push_back(direct == out.at(2) ? "same repr" : "repr differs: " + direct);
  std::vector<std::string> names = co_await obj.netref().dir();
  out.push_back(fmt::format("{}", fmt::join(names, ",")) == out.at(3) ? "same dir" : "dir differs");
  std::int64_t h = co_await obj.netref().hash();
  out.push_back(std::to_string(h) == out.at(8) ? "same hash" : "hash differs: " + std::to_string(h));
  std::vector<std::string> inspected = co_await obj.netref().inspect();
  out.push_back(fmt::format("{}", fmt::join(inspected, ",")) == out.at(9) ? "same inspect"
                                                                          : "inspect differs");
  co_return out;
}

TEST_F(ForwardingTest, EveryOperationOfTheFarEndReachesTheOrigin) {
  const Strings got = run(probe_through_middle(origin_side(), far_side()));
  ASSERT_EQ(got.size(), 14u);
  EXPECT_EQ(got[0], "42");
  EXPECT_EQ(got[1], "5");
  EXPECT_NE(got[2].find("tests.TestRoot"), std::string::npos) << got[2];
  EXPECT_EQ(got[4], "ValueError: far away");
  EXPECT_EQ(got[5], "42");
  EXPECT_EQ(got[6], "7 42");  // keyword arguments arrived through CALLATTR and CALL
  EXPECT_EQ(got[7], "a test root");
  EXPECT_EQ(got[10], "same repr");
  EXPECT_EQ(got[11], "same dir");
  EXPECT_EQ(got[12], "same hash");
  EXPECT_EQ(got[13], "same inspect");
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

/// An origin object with plain attributes that may be set and deleted; it logs each change.
class Slots : public Object {
 public:
  [[nodiscard]] std::string type_name() const override { return "tests.Slots"; }
  [[nodiscard]] bool has_attr(std::string_view n) const override {
    return values_.count(std::string(n)) != 0;
  }
  Any get_attr(CallContext& ctx, std::string_view n) override {
    auto it = values_.find(std::string(n));
    if (it == values_.end()) return Object::get_attr(ctx, n);
    return Any(Value(it->second));
  }
  void set_attr(CallContext&, std::string_view n, Any v) override {
    values_[std::string(n)] = v.value().as_str();
    log.push_back(fmt::format("set {}={}", n, v.value().as_str()));
  }
  void del_attr(CallContext& ctx, std::string_view n) override {
    if (values_.erase(std::string(n)) == 0) Object::del_attr(ctx, n);
    log.push_back(fmt::format("del {}", n));
  }

  Strings log;

 private:
  std::map<std::string, std::string> values_;
};

Task<std::string> poke_through_middle(Connection& slots_side, Connection& far_side) {
  Netref slots = co_await slots_side.root();
  Netref far_root = co_await far_side.root();
  Any r = co_await far_root.callattr("poke", make_args(slots));
  co_return r.value().as_str();
}

// SETATTR and DELATTR by the far end change the origin's object; the origin's own policy
// (here one that allows them) decides, and its AttributeError comes back through the middle.
TEST_F(ForwardingTest, SetattrAndDelattrOfTheFarEndReachTheOrigin) {
  auto slots = std::make_shared<Slots>();
  ConnectionOptions open;
  open.policy.allow_public_attrs = true;
  open.policy.allow_setattr = true;
  open.policy.allow_delattr = true;
  ConnectionPair to_slots = connect_pair(loop_, slots, {}, open);
  EXPECT_EQ(run(poke_through_middle(*to_slots.client, far_side())), "red AttributeError");
  EXPECT_EQ(slots->log, (Strings{"set colour=red", "del colour"}));
}

Task<void> lend_and_release(ForwardingTest* t, Connection& origin_side, Connection& far_side,
                            Connection& origin, std::shared_ptr<Prober> prober,
                            std::vector<std::size_t>& exported) {
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

// ------------------------------------------------------------------ under stress
//
// The same three parties, with an origin that misbehaves or vanishes and a far end that goes
// away in the middle of a forwarded call. The far end's calls must fail with a clear error
// (TimeoutError / ConnectionError raised at the far end, or the far end's own Timeout) within
// its deadline, the middle must go on serving its other connections (a client C of a TestRoot
// the middle serves), and every table must return to where it started: nothing the far end
// dropped stays exported, no request stays pending.

using namespace std::chrono_literals;

/// Two connections joined by an in-memory pipe of `capacity` bytes a direction, with weak
/// references to both streams (so that a test can reset either end).
struct WiredPair {
  std::unique_ptr<Connection> client;
  std::unique_ptr<Connection> server;
  BufferedStream::WeakRef client_stream;
  BufferedStream::WeakRef server_stream;
};

WiredPair wire(EventLoop& loop, ObjectPtr server_root, ConnectionOptions client_opts,
               ConnectionOptions server_opts, std::size_t capacity = std::size_t{1} << 20) {
  auto pipe = make_mem_pipe(loop, capacity);
  auto client_stream = std::make_unique<BufferedStream>(std::move(pipe.first));
  auto server_stream = std::make_unique<BufferedStream>(std::move(pipe.second));
  WiredPair p;
  p.client_stream = client_stream->weak_ref();
  p.server_stream = server_stream->weak_ref();
  p.client = std::make_unique<Connection>(std::make_unique<Channel>(std::move(client_stream)), nullptr,
                                          std::move(client_opts));
  p.server = std::make_unique<Connection>(std::make_unique<Channel>(std::move(server_stream)),
                                          std::move(server_root), std::move(server_opts));
  p.client->start();
  p.server->start();
  return p;
}

/// The middle's connection to an origin played by a raw channel (what it reads, when, and how
/// it goes away are the test's).
struct RawOrigin {
  std::unique_ptr<Channel> raw;
  std::unique_ptr<Connection> middle;
};

RawOrigin raw_origin(EventLoop& loop, ConnectionOptions middle_opts, std::size_t capacity) {
  auto pipe = make_mem_pipe(loop, capacity);
  RawOrigin o;
  o.raw = std::make_unique<Channel>(std::make_unique<BufferedStream>(std::move(pipe.second)));
  o.middle = std::make_unique<Connection>(
      std::make_unique<Channel>(std::make_unique<BufferedStream>(std::move(pipe.first))), nullptr,
      std::move(middle_opts));
  o.middle->start();
  return o;
}

/// A raw answer that leaves every request unanswered.
std::optional<Value> no_answer(const Value&) { return std::nullopt; }

/// The raw origin answers GETROOT (and nothing else) for the first `count` requests it reads.
Task<void> read_requests(Channel& raw, std::vector<Value>& got, std::size_t count) {
  co_await serve_raw(raw, got, no_answer, count);
}

/// Lends the origin's root (the middle's proxy of it) to the far end, which keeps it.
Task<void> far_end_keeps_origin_root(Connection& middle_to_origin, Connection& middle_to_far) {
  Netref origin_root = co_await middle_to_origin.root();
  Netref far_root = co_await middle_to_far.root();
  Any ignored = co_await far_root.callattr("keep", make_args(origin_root));
  (void)ignored;
}

/// The same with an origin played by a raw channel, which answers the middle's GETROOT (the
/// first request it reads, kept in `got`).
Task<void> far_end_keeps_raw_root(Channel& raw, std::vector<Value>& got, Connection& middle_to_origin,
                                  Connection& middle_to_far) {
  TaskGroup answering(EventLoop::current_or_throw());
  answering.spawn(read_requests(raw, got, 1));
  co_await far_end_keeps_origin_root(middle_to_origin, middle_to_far);
  co_await answering.wait();
}

/// Pings on each connection until `done` holds or `limit` passes (DELs and late replies take
/// a round trip or two to land; an origin that timed out takes its timeout).
Task<bool> settle_on(std::vector<Connection*> conns, std::function<bool()> done, Duration limit = 5s) {
  const TimePoint deadline = Clock::now() + limit;
  while (!done() && Clock::now() < deadline) {
    for (Connection* c : conns) {
      if (!c->closed()) co_await c->ping();
    }
    co_await sleep(5ms);
  }
  co_return done();
}

class ForwardingStressTest : public LoopTest {
 public:
  void TearDown() override {
    to_far_ = {};
    to_origin_ = {};
    to_middle_ = {};
    origin_ = {};
    LoopTest::TearDown();
  }

  /// The far end (a Prober, sync deadline `far_timeout`) and a client C of a TestRoot the
  /// middle serves.
  void start_far_and_client(Duration far_timeout) {
    ConnectionOptions far;
    far.sync_request_timeout = far_timeout;
    to_far_ = wire(loop_, prober_, ConnectionOptions(), far);
    to_middle_ = wire(loop_, middle_root_, ConnectionOptions(), ConnectionOptions());
  }

  Connection& middle_to_far() { return *to_far_.client; }
  Connection& far() { return *to_far_.server; }
  Connection& client_of_middle() { return *to_middle_.client; }

  /// C's call on the middle's own root: the middle still serves its other connections.
  Task<std::int64_t> middle_still_serves() {
    Netref root = co_await client_of_middle().root();
    std::int64_t r = co_await root.callattr<std::int64_t>("add", 20, 22);
    co_return r;
  }

  std::shared_ptr<Prober> prober_ = std::make_shared<Prober>();
  std::shared_ptr<TestRoot> middle_root_ = std::make_shared<TestRoot>();
  std::shared_ptr<TestRoot> origin_root_ = std::make_shared<TestRoot>();
  WiredPair to_far_;
  WiredPair to_middle_;
  WiredPair to_origin_;  // a real origin: client = the middle's side
  RawOrigin origin_;     // or a raw one
};

/// What a far-end call ended with: "ok <repr>", "<RemoteError type>", or the local error's kind.
Task<std::string> outcome(Task<Any> call) {
  std::string out;
  try {
    Any r = co_await std::move(call);
    out = "ok " + r.repr();
  } catch (const RemoteError& e) {
    out = e.type_name();
  } catch (const Timeout&) {
    out = "Timeout";
  } catch (const Disconnected&) {
    out = "Disconnected";
  }
  co_return out;
}

Task<void> stuck_origin(ForwardingStressTest* t, RawOrigin& origin, Connection& middle_to_far,
                        Connection& far, std::shared_ptr<Prober> prober, std::vector<std::string>& out) {
  std::vector<Value> got;
  co_await far_end_keeps_raw_root(*origin.raw, got, *origin.middle, middle_to_far);  // then it reads no more
  const ConnectionStats middle_before = origin.middle->stats();
  // The far end calls through with 16 requests of 48 KiB each: the middle forwards them to an
  // origin that reads nothing, so they pile up behind its full 16 KiB pipe.
  const TimePoint t0 = Clock::now();
  std::vector<AsyncResult> calls;
  for (int i = 0; i < 16; ++i) {
    calls.push_back(prober->kept.callattr_async("echo", make_args(Value(Bytes(std::string(48 << 10, 'x'))))));
    calls.back().set_expiry(far.options().sync_request_timeout);
  }
  // Meanwhile the middle serves its other connections.
  std::int64_t served = co_await t->middle_still_serves();
  out.push_back(std::to_string(served));
  for (AsyncResult& c : calls) out.push_back(co_await outcome(c.wait()));
  const Duration waited = Clock::now() - t0;
  // Every call was forwarded: the requests sit in the middle's output to the origin.
  EXPECT_EQ(origin.middle->stats().requests_out - middle_before.requests_out, 16u);
  out.push_back(waited < far.options().sync_request_timeout + 2s ? "within the deadline" : "late");
  // The middle's own requests to the origin expire on its deadline; the far end drops the
  // reference; every table returns to where it was.
  prober->kept = Netref();
  std::vector<Connection*> conns;  // (no braced list inside a co_await expression: GCC 12)
  conns.push_back(&middle_to_far);
  conns.push_back(&t->client_of_middle());
  bool settled = co_await settle_on(conns, [&] {
    return origin.middle->stats().pending == 0 && middle_to_far.stats().exported == 0 &&
           far.stats().proxies == 0 && origin.middle->stats().proxies == middle_before.proxies;
  });
  out.push_back(settled ? "settled"
                        : "tables not back: pending " + std::to_string(origin.middle->stats().pending) +
                              ", exported to far " + std::to_string(middle_to_far.stats().exported));
  // Then the origin resets: the middle's connection to it closes, the rest goes on.
  origin.raw->stream().abort();
  co_await origin.middle->wait_closed();
  served = co_await t->middle_still_serves();
  out.push_back(std::to_string(served));
}

TEST_F(ForwardingStressTest, AnOriginThatStopsReadingTimesTheFarEndOutAndLeaksNothing) {
  start_far_and_client(300ms);
  ConnectionOptions middle;
  middle.sync_request_timeout = 500ms;
  origin_ = raw_origin(loop_, middle, 16 << 10);
  std::vector<std::string> out;
  run(stuck_origin(this, origin_, middle_to_far(), far(), prober_, out));
  ASSERT_EQ(out.size(), 20u);
  EXPECT_EQ(out[0], "42");
  for (std::size_t i = 1; i <= 16; ++i) EXPECT_EQ(out[i], "Timeout") << i;
  EXPECT_EQ(out[17], "within the deadline");
  EXPECT_EQ(out[18], "settled");
  EXPECT_EQ(out[19], "42");
  EXPECT_FALSE(middle_to_far().closed());
}

Task<void> flood(Connection& origin, int n, std::vector<AsyncResult>& pings) {
  for (int i = 0; i < n; ++i) {
    pings.push_back(origin.async_request(rpc::Handler::kPing, make_args(Value(std::string(512, 'p')))));
  }
  co_return;
}

Task<void> calls_through_a_flood(ForwardingStressTest* t, Connection& middle_to_origin, Connection& origin,
                                 Connection& middle_to_far, Connection& far, std::shared_ptr<Prober> prober,
                                 std::vector<std::string>& out) {
  co_await far_end_keeps_origin_root(middle_to_origin, middle_to_far);
  const std::size_t origin_exports = origin.stats().exported;
  std::vector<AsyncResult> pings;
  co_await flood(origin, 5000, pings);  // all sent before the far end's first call
  Duration slowest{};
  int right = 0;
  for (int i = 0; i < 50; ++i) {
    const TimePoint t0 = Clock::now();
    std::int64_t r = co_await prober->kept.callattr<std::int64_t>("add", i, 1);
    slowest = std::max(slowest, Clock::now() - t0);
    if (r == i + 1) ++right;
  }
  out.push_back(std::to_string(right));
  out.push_back(slowest < far.options().sync_request_timeout ? "each within the deadline" : "too slow");
  int answered = 0;
  for (AsyncResult& p : pings) {
    Any echo = co_await p.wait();
    if (echo.value().as_str().size() == 512) ++answered;
  }
  out.push_back(std::to_string(answered));
  std::int64_t served = co_await t->middle_still_serves();
  out.push_back(std::to_string(served));
  prober->kept = Netref();
  std::vector<Connection*> conns;
  conns.push_back(&middle_to_far);
  conns.push_back(&middle_to_origin);
  bool settled = co_await settle_on(conns, [&] {
    return middle_to_origin.stats().pending == 0 && origin.stats().pending == 0 &&
           middle_to_far.stats().exported == 0 && origin.stats().exported == origin_exports;
  });
  out.push_back(settled ? "settled" : "tables not back");
}

TEST_F(ForwardingStressTest, AnOriginFloodingTheMiddleDoesNotStopTheFarEndsCalls) {
  start_far_and_client(5s);
  to_origin_ = wire(loop_, origin_root_, ConnectionOptions(), ConnectionOptions());
  std::vector<std::string> out;
  run(calls_through_a_flood(this, *to_origin_.client, *to_origin_.server, middle_to_far(), far(), prober_,
                            out),
      60s);
  EXPECT_EQ(out, (std::vector<std::string>{"50", "each within the deadline", "5000", "42", "settled"}));
}

enum class Vanish { kEof, kReset };

Task<void> origin_vanishes(ForwardingStressTest* t, RawOrigin& origin, Vanish how, Connection& middle_to_far,
                           Connection& far, std::shared_ptr<Prober> prober, std::vector<std::string>& out) {
  std::vector<Value> got;
  co_await far_end_keeps_raw_root(*origin.raw, got, *origin.middle, middle_to_far);
  AsyncResult call = prober->kept.callattr_async("slow");
  co_await read_requests(*origin.raw, got, 2);  // the forwarded call reached the origin ...
  const Value& handler = got.at(1).as_tuple().at(2).as_tuple().at(0);
  out.push_back(handler == Value(static_cast<std::int64_t>(rpc::Handler::kCallAttr)) ? "forwarded"
                                                                                     : handler.repr());
  const TimePoint t0 = Clock::now();
  if (how == Vanish::kEof) {  // ... and the origin goes away before it answers
    origin.raw->close();
  } else {
    origin.raw->stream().abort();
  }
  out.push_back(co_await outcome(call.wait()));
  out.push_back(Clock::now() - t0 < far.options().sync_request_timeout / 2 ? "at once" : "late");
  co_await origin.middle->wait_closed();
  std::int64_t served = co_await t->middle_still_serves();
  out.push_back(std::to_string(served));
  prober->kept = Netref();
  std::vector<Connection*> conns(1, &middle_to_far);
  bool settled = co_await settle_on(
      conns, [&] { return middle_to_far.stats().exported == 0 && far.stats().proxies == 0; });
  out.push_back(settled ? "settled" : "tables not back");
  out.push_back(middle_to_far.closed() ? "far connection closed" : "far connection open");
}

class OriginVanishesTest : public ForwardingStressTest, public ::testing::WithParamInterface<Vanish> {};

TEST_P(OriginVanishesTest, MidCallTheFarEndsCallFailsAtOnce) {
  start_far_and_client(10s);
  origin_ = raw_origin(loop_, ConnectionOptions(), 1 << 20);
  std::vector<std::string> out;
  run(origin_vanishes(this, origin_, GetParam(), middle_to_far(), far(), prober_, out));
  EXPECT_EQ(out, (std::vector<std::string>{"forwarded", "ConnectionError", "at once", "42", "settled",
                                           "far connection open"}));
}

INSTANTIATE_TEST_SUITE_P(EofAndReset, OriginVanishesTest, ::testing::Values(Vanish::kEof, Vanish::kReset),
                         [](const ::testing::TestParamInfo<Vanish>& i) {
                           return i.param == Vanish::kEof ? std::string("Eof") : std::string("Reset");
                         });

/// Far end: a forwarded call waits on the origin; the far end vanishes; then the origin's
/// reply — a reference to a fresh object of its own — arrives at a middle that has nobody to
/// give it to, and must release it (DEL) rather than keep it.
Task<void> far_end_vanishes(ForwardingStressTest* t, RawOrigin& origin, Vanish how, WiredPair& to_far,
                            std::shared_ptr<Prober> prober, std::vector<std::string>& out) {
  Connection& middle_to_far = *to_far.client;
  std::vector<Value> got;
  co_await far_end_keeps_raw_root(*origin.raw, got, *origin.middle, middle_to_far);
  const ConnectionStats before = origin.middle->stats();
  AsyncResult call = prober->kept.callattr_async("make");
  co_await read_requests(*origin.raw, got, 2);  // the forwarded call is at the origin
  const std::int64_t seq = got.at(1).as_tuple().at(1).as_int64();
  if (how == Vanish::kEof) {
    to_far.server.reset();  // the far end's connection goes, its Netrefs fail from now on
  } else {
    to_far.server_stream.abort();
  }
  co_await middle_to_far.wait_closed();
  out.push_back(middle_to_far.closed() ? "far gone" : "far still there");
  // The origin answers now, with a new object of its own.
  const Value made = Value::make_tuple(Value("tests.Raw"), Value(1), Value(7));
  send_raw_reply(*origin.raw, seq,
                 Value::make_tuple(Value(static_cast<std::int64_t>(rpc::Label::kRemoteRef)), made));
  // The middle releases it: a DEL of that id_pack reaches the origin.
  bool released = false;
  for (int i = 0; i < 5 && !released; ++i) {
    std::vector<Value> more;
    co_await read_requests(*origin.raw, more, 1);
    // DEL's body: (DEL, (TUPLE, ((LOCAL_REF, id_pack), (VALUE, count)))).
    const Value& body = more.at(0).as_tuple().at(2);
    released = body.as_tuple().at(0) == Value(static_cast<std::int64_t>(rpc::Handler::kDel)) &&
               body.as_tuple().at(1).as_tuple().at(1).as_tuple().at(0).as_tuple().at(1) == made;
  }
  out.push_back(released ? "late object released" : "late object kept");
  std::vector<Connection*> none;
  bool settled = co_await settle_on(none, [&] {
    return origin.middle->stats().pending == 0 && origin.middle->stats().proxies == before.proxies;
  });
  out.push_back(settled ? "settled"
                        : "tables not back: pending " + std::to_string(origin.middle->stats().pending) +
                              ", proxies " + std::to_string(origin.middle->stats().proxies));
  std::int64_t served = co_await t->middle_still_serves();
  out.push_back(std::to_string(served));
  (void)call;
}

class FarEndVanishesTest : public ForwardingStressTest, public ::testing::WithParamInterface<Vanish> {};

TEST_P(FarEndVanishesTest, WhileTheMiddleWaitsOnTheOrigin) {
  start_far_and_client(10s);
  origin_ = raw_origin(loop_, ConnectionOptions(), 1 << 20);
  std::vector<std::string> out;
  run(far_end_vanishes(this, origin_, GetParam(), to_far_, prober_, out));
  EXPECT_EQ(out, (std::vector<std::string>{"far gone", "late object released", "settled", "42"}));
  EXPECT_FALSE(origin_.middle->closed()) << "the middle's connection to the origin goes on";
}

INSTANTIATE_TEST_SUITE_P(EofAndReset, FarEndVanishesTest, ::testing::Values(Vanish::kEof, Vanish::kReset),
                         [](const ::testing::TestParamInfo<Vanish>& i) {
                           return i.param == Vanish::kEof ? std::string("Eof") : std::string("Reset");
                         });

}  // namespace
}  // namespace tether::testing
