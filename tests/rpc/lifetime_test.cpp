// Lifetimes on an RPyC connection: AsyncResult's states, callbacks and expiry; the default
// sync request timeout; thousands of requests in flight at once; Netrefs that outlive their
// Connection; and reference counting of exported objects with DEL (wire spec §10, §11.1).
//
// Everything runs on one loop with both ends of an in-memory pipe. Nothing waits on wall-clock
// time to synchronise: a round trip (ping or a call) proves the peer has read what came before
// it, and server objects set Events when they reach a state. The only timers are the expiries
// under test.

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "rpc/connection_core.hpp"
#include "rpc_fixture.hpp"
#include "tether/brine/codec.hpp"
#include "tether/loop/task_group.hpp"
#include "tether/loop/time.hpp"
#include "tether/rpc/remote_exception.hpp"

namespace tether::testing {
namespace {

using brine::Value;
using namespace std::chrono_literals;

Value T(std::vector<Value> items) { return Value::tuple(std::move(items)); }
Value label(rpc::Label l) { return Value(static_cast<std::int64_t>(l)); }
Value handler(rpc::Handler h) { return Value(static_cast<std::int64_t>(h)); }

/// A server root for the in-flight and refcount tests.
///   hold(i):  counts itself in flight, waits for `release`, returns 2 * i + 1;
///             sets `reached` when `target` calls are in flight together.
///   same():   the one `shared` object, every time.
///   other():  a second object, `other_obj`, every time.
///   triple(): (shared, shared, shared) in one reply.
///   fresh():  a new object each call (`last_fresh` watches the latest).
///   keep(f):  stores the Netref f in `kept`.
class LifeRoot : public Object {
 public:
  [[nodiscard]] std::string type_name() const override { return "tests.LifeRoot"; }
  [[nodiscard]] bool has_attr(std::string_view n) const override {
    return n == "exposed_hold" || n == "exposed_same" || n == "exposed_other" || n == "exposed_triple" ||
           n == "exposed_fresh" || n == "exposed_keep";
  }
  Any get_attr(CallContext&, std::string_view name) override { return method_of(this, name); }
  Task<Any> call_attr(CallContext&, std::string_view name, std::vector<Any> args, Kwargs) override {
    if (name == "exposed_hold") {
      const std::int64_t i = args.at(0).value().as_int64();
      ++in_flight;
      max_in_flight = std::max(max_in_flight, in_flight);
      if (in_flight == target) reached->set();
      std::shared_ptr<Event> ev = release;
      co_await ev->wait();
      --in_flight;
      co_return Any(Value(2 * i + 1));
    }
    if (name == "exposed_same") co_return Any(shared);
    if (name == "exposed_other") co_return Any(other_obj);
    if (name == "exposed_triple") co_return Any::tuple(make_args(shared, shared, shared));
    if (name == "exposed_fresh") {
      auto obj = std::static_pointer_cast<Object>(std::make_shared<TestRoot>());
      last_fresh = obj;
      co_return Any(obj);
    }
    if (name == "exposed_keep") {
      kept = args.at(0).netref();
      co_return Any();
    }
    throw attribute_error(name);
  }

  std::shared_ptr<Event> release = std::make_shared<Event>();
  std::shared_ptr<Event> reached = std::make_shared<Event>();
  long target = -1;
  long in_flight = 0;
  long max_in_flight = 0;
  ObjectPtr shared = std::make_shared<TestRoot>();
  ObjectPtr other_obj = std::make_shared<TestRoot>();
  std::weak_ptr<Object> last_fresh;
  Netref kept;
};

struct LifePair : ConnectionPair {
  std::shared_ptr<LifeRoot> root = std::make_shared<LifeRoot>();
};

LifePair make_life_pair(EventLoop& loop, ConnectionOptions client_opts = {},
                        ConnectionOptions server_opts = {}) {
  LifePair p;
  static_cast<ConnectionPair&>(p) = connect_pair(loop, p.root, client_opts, server_opts);
  return p;
}

class AsyncResultTest : public LoopTest {};
class LifetimeTest : public LoopTest {};

// =========================================================================== A. AsyncResult

/// A default AsyncResult is empty: every query says "no", every use is a UsageError.
Task<void> empty_result() {
  AsyncResult r;
  EXPECT_FALSE(r.valid());
  EXPECT_FALSE(r.ready());
  EXPECT_FALSE(r.has_error());
  EXPECT_FALSE(r.expired());
  EXPECT_EQ(r.seq(), 0u);
  EXPECT_THROW((void)r.value(), UsageError);
  EXPECT_THROW(r.add_callback([](const AsyncResult&) {}), UsageError);
  EXPECT_THROW(r.set_expiry(1s), UsageError);
  EXPECT_THROW((void)co_await r, UsageError);
}

TEST_F(AsyncResultTest, EmptyResultRefusesEveryUse) { run(empty_result()); }

/// ready() is false until the reply has been read and true after; value() is refused before.
Task<void> ready_after_reply(Connection& c, TestRoot& server_root) {
  Netref root = co_await c.root();
  AsyncResult quick = root.callattr_async("add", make_args(Value(2), Value(3)));
  // Nothing has run on the loop since the request was queued: no reply can be there yet.
  EXPECT_TRUE(quick.valid());
  EXPECT_FALSE(quick.ready());
  EXPECT_FALSE(quick.has_error());
  EXPECT_FALSE(quick.expired());
  EXPECT_THROW((void)quick.value(), UsageError);
  Any v = co_await quick;
  EXPECT_EQ(v.value().as_int64(), 5);
  EXPECT_TRUE(quick.ready());
  EXPECT_FALSE(quick.has_error());
  EXPECT_FALSE(quick.expired());
  EXPECT_EQ(quick.value().value().as_int64(), 5);  // awaiting by const& leaves the value
  // A copy shares the state; wait() on a ready result returns the same value.
  AsyncResult copy = quick;
  EXPECT_TRUE(copy.ready());
  Any w = co_await copy.wait();
  EXPECT_EQ(w.value().as_int64(), 5);

  // A request the server holds: still not ready after a later round trip has completed.
  const int calls_before = server_root.calls;
  AsyncResult held = root.callattr_async("slow");
  co_await c.ping();
  EXPECT_EQ(server_root.calls, calls_before + 1);  // the server is inside slow()
  EXPECT_FALSE(held.ready());
  EXPECT_EQ(c.stats().pending, 1u);
  server_root.release->set();
  Any done = co_await held.wait();
  EXPECT_EQ(done.value().as_str(), "done");
  EXPECT_TRUE(held.ready());
  EXPECT_FALSE(held.has_error());
  EXPECT_EQ(c.stats().pending, 0u);
}

TEST_F(AsyncResultTest, ReadyOnlyOnceTheReplyArrived) {
  auto p = make_rpc_pair(loop_);
  run(ready_after_reply(*p.client, *p.server_root));
}

/// has_error() is false for a good result and true for a remote exception, which value(),
/// co_await and wait() all rethrow (every time).
Task<void> error_results(Connection& c) {
  Netref root = co_await c.root();
  const std::string msg = "boom";
  AsyncResult bad = root.callattr_async("fail", make_args(Value(msg)));
  AsyncResult good = root.callattr_async("echo", make_args(Value(7)));
  EXPECT_FALSE(bad.has_error());  // not ready yet: no error either
  std::string caught = "no exception";
  try {
    (void)co_await bad;
  } catch (const RemoteError& e) {
    caught = e.type_name() + "|" + e.args().at(0);
  }
  EXPECT_EQ(caught, "ValueError|boom");
  EXPECT_TRUE(bad.ready());
  EXPECT_TRUE(bad.has_error());
  EXPECT_FALSE(bad.expired());
  EXPECT_THROW((void)bad.value(), RemoteError);
  EXPECT_THROW((void)co_await bad.wait(), RemoteError);
  EXPECT_THROW((void)co_await bad, RemoteError);

  Any g = co_await good;
  EXPECT_EQ(g.value().as_int64(), 7);
  EXPECT_TRUE(good.ready());
  EXPECT_FALSE(good.has_error());
  EXPECT_NO_THROW((void)good.value());
  // The failed call left the connection usable.
  EXPECT_EQ(co_await root.callattr<std::int64_t>("add", 1, 2), 3);
}

TEST_F(AsyncResultTest, HasErrorOnlyForARemoteException) {
  auto p = make_rpc_pair(loop_);
  run(error_results(*p.client));
}

/// Callbacks added before the reply run exactly once when it arrives, and see the result
/// ready; one added after it is ready runs at once, inside add_callback. A callback that
/// throws does not stop the others.
Task<void> callbacks(Connection& c, TestRoot& server_root) {
  Netref root = co_await c.root();
  AsyncResult r = root.callattr_async("slow");
  int first = 0;
  int second = 0;
  int thrower = 0;
  bool ready_inside = false;
  std::string value_inside;
  r.add_callback([&](const AsyncResult& x) {
    ++first;
    ready_inside = x.ready();
    value_inside = x.value().value().as_str();
  });
  r.add_callback([&](const AsyncResult&) {
    ++thrower;
    throw std::runtime_error("a callback that throws");
  });
  r.add_callback([&](const AsyncResult&) { ++second; });
  co_await c.ping();  // the server holds slow(): no reply, no callback
  EXPECT_EQ(first, 0);
  EXPECT_EQ(second, 0);
  server_root.release->set();
  Any v = co_await r;
  EXPECT_EQ(v.value().as_str(), "done");
  // The callbacks ran when the reply was read, before this waiter resumed.
  EXPECT_EQ(first, 1);
  EXPECT_EQ(thrower, 1);
  EXPECT_EQ(second, 1);
  EXPECT_TRUE(ready_inside);
  EXPECT_EQ(value_inside, "done");
  co_await c.ping();
  EXPECT_EQ(first, 1);  // never again
  EXPECT_EQ(second, 1);

  int late = 0;
  bool late_ready = false;
  r.add_callback([&](const AsyncResult& x) {
    ++late;
    late_ready = x.ready();
  });
  EXPECT_EQ(late, 1);  // already ready: run before add_callback returned
  EXPECT_TRUE(late_ready);
  co_await c.ping();
  EXPECT_EQ(late, 1);

  // An error result's callback sees has_error().
  bool saw_error = false;
  const std::string msg = "cb";
  AsyncResult bad = root.callattr_async("fail", make_args(Value(msg)));
  bad.add_callback([&](const AsyncResult& x) { saw_error = x.has_error(); });
  EXPECT_THROW((void)co_await bad, RemoteError);
  EXPECT_TRUE(saw_error);
}

TEST_F(AsyncResultTest, CallbacksRunOnceWhenTheReplyArrives) {
  auto p = make_rpc_pair(loop_);
  run(callbacks(*p.client, *p.server_root));
}

/// set_expiry: a held call expires with Timeout("result expired"), is no longer pending,
/// runs its callback, and stays expired when the late reply comes; the connection is usable.
/// The expiry is one timer, replaced (not added to) by a second set_expiry.
Task<void> expiry(Connection& c, TestRoot& server_root, EventLoop& loop) {
  Netref root = co_await c.root();
  AsyncResult r = root.callattr_async("slow");
  int callback_runs = 0;
  bool expired_inside = false;
  r.add_callback([&](const AsyncResult& x) {
    ++callback_runs;
    expired_inside = x.expired();
  });
  const std::size_t timers = loop.stats().timers;
  r.set_expiry(1h);
  EXPECT_EQ(loop.stats().timers, timers + 1);
  r.set_expiry(20ms);  // replaces the first expiry
  EXPECT_EQ(loop.stats().timers, timers + 1);
  EXPECT_FALSE(r.expired());
  std::string what = "no timeout";
  try {
    (void)co_await r;
  } catch (const Timeout& e) {
    what = e.what();
  }
  EXPECT_EQ(what, "result expired");
  EXPECT_TRUE(r.expired());
  EXPECT_TRUE(r.ready());
  EXPECT_TRUE(r.has_error());
  EXPECT_THROW((void)r.value(), Timeout);
  EXPECT_EQ(callback_runs, 1);
  EXPECT_TRUE(expired_inside);
  EXPECT_EQ(c.stats().pending, 0u);  // forgotten: a late reply finds nothing
  EXPECT_EQ(loop.stats().timers, timers);

  server_root.release->set();  // slow() replies now, late
  co_await c.ping();
  co_await c.ping();
  EXPECT_TRUE(r.expired());
  EXPECT_THROW((void)r.value(), Timeout);  // the late reply did not complete it
  EXPECT_EQ(callback_runs, 1);
  EXPECT_EQ(co_await root.callattr<std::int64_t>("add", 1, 2), 3);
  EXPECT_FALSE(c.closed());
}

TEST_F(AsyncResultTest, SetExpiryTimesOutAndTheConnectionStaysUsable) {
  auto p = make_rpc_pair(loop_);
  run(expiry(*p.client, *p.server_root, loop_));
}

/// A reply cancels the expiry timer; set_expiry on a ready result arms nothing and changes
/// nothing.
Task<void> expiry_cancelled(Connection& c, EventLoop& loop) {
  Netref root = co_await c.root();
  AsyncResult r = root.callattr_async("add", make_args(Value(20), Value(22)));
  const std::size_t timers = loop.stats().timers;
  r.set_expiry(1h);
  EXPECT_EQ(loop.stats().timers, timers + 1);
  Any v = co_await r;
  EXPECT_EQ(v.value().as_int64(), 42);
  EXPECT_EQ(loop.stats().timers, timers);  // the reply cancelled the expiry
  r.set_expiry(0ms);
  EXPECT_EQ(loop.stats().timers, timers);
  EXPECT_FALSE(r.expired());
  EXPECT_FALSE(r.has_error());
  EXPECT_EQ(r.value().value().as_int64(), 42);
}

TEST_F(AsyncResultTest, ReplyCancelsExpiryAndExpiryOfAReadyResultIsANoOp) {
  auto p = make_rpc_pair(loop_);
  run(expiry_cancelled(*p.client, loop_));
}

/// Async requests are not under sync_request_timeout: a sync call times out while an async
/// one sent before it is still pending (not expired), and later gets its reply.
Task<void> async_outlives_sync_timeout(Connection& c, TestRoot& server_root) {
  Netref root = co_await c.root();
  AsyncResult async = root.callattr_async("slow");
  EXPECT_THROW((void)co_await root.callattr("slow"), Timeout);
  EXPECT_FALSE(async.ready());
  EXPECT_FALSE(async.expired());
  server_root.release->set();
  Any v = co_await async;
  EXPECT_EQ(v.value().as_str(), "done");
  EXPECT_FALSE(async.expired());
}

TEST_F(AsyncResultTest, AsyncRequestsIgnoreTheSyncTimeout) {
  ConnectionOptions o;
  o.sync_request_timeout = 30ms;
  auto p = make_rpc_pair(loop_, o);
  run(async_outlives_sync_timeout(*p.client, *p.server_root));
}

/// Concurrent requests have distinct seq(); awaiting an rvalue shared with a copy leaves the
/// copy's value intact, and awaiting the last owner by rvalue takes it (the result is empty).
Task<void> seq_and_move(Connection& c) {
  Netref root = co_await c.root();
  const std::string text(1000, 'x');
  AsyncResult a = root.callattr_async("echo", make_args(Value(text)));
  AsyncResult b = root.callattr_async("echo", make_args(Value(text + "y")));
  EXPECT_NE(a.seq(), b.seq());
  const std::uint64_t a_seq = a.seq();
  AsyncResult keep = a;
  Any va = co_await std::move(a);
  EXPECT_EQ(va.value().as_str(), text);
  EXPECT_EQ(keep.seq(), a_seq);
  EXPECT_EQ(keep.value().value().as_str(), text);  // shared: copied, not moved out
  Any vb = co_await std::move(b);
  EXPECT_EQ(vb.value().as_str(), text + "y");
  EXPECT_FALSE(b.valid());  // NOLINT(bugprone-use-after-move): the rvalue await took it
}

TEST_F(AsyncResultTest, SeqIsDistinctAndRvalueAwaitRespectsSharing) {
  auto p = make_rpc_pair(loop_);
  run(seq_and_move(*p.client));
}

// ======================================================================= B. default timeout

TEST(LifetimeOptions, DefaultSyncRequestTimeoutIsThirtySeconds) {
  const ConnectionOptions o{};
  EXPECT_EQ(o.sync_request_timeout, std::chrono::seconds(30));
  EXPECT_EQ(ConnectionOptions().sync_request_timeout, std::chrono::seconds(30));
}

/// A sync request under the default options is still waiting after a 50 ms expiry of an
/// async one elapsed, and completes when released (the default is not some small value).
Task<void> sync_waits_beyond_expiry(Connection& c, TestRoot& server_root) {
  Netref root = co_await c.root();
  Task<Any> sync = root.callattr("slow");  // sent now, under the default 30 s
  AsyncResult probe = root.callattr_async("slow");
  probe.set_expiry(50ms);
  EXPECT_THROW((void)co_await probe, Timeout);
  EXPECT_EQ(c.stats().pending, 1u);  // the sync request: not timed out
  server_root.release->set();
  Any v = co_await std::move(sync);
  EXPECT_EQ(v.value().as_str(), "done");
}

TEST_F(LifetimeTest, ConnectionReportsItsSyncRequestTimeout) {
  auto p = make_rpc_pair(loop_);
  EXPECT_EQ(p.client->options().sync_request_timeout, std::chrono::seconds(30));
  EXPECT_EQ(p.server->options().sync_request_timeout, std::chrono::seconds(30));
  run(sync_waits_beyond_expiry(*p.client, *p.server_root));

  ConnectionOptions o;
  o.sync_request_timeout = 250ms;
  auto q = make_rpc_pair(loop_, o);
  EXPECT_EQ(q.client->options().sync_request_timeout, std::chrono::milliseconds(250));
  EXPECT_EQ(q.server->options().sync_request_timeout, std::chrono::seconds(30));
}

// ====================================================================== C. many in flight

constexpr int kInFlight = 5000;

/// Issues n hold(i) calls (odd i by CALLATTR, even i by CALL on the bound method), waits until
/// `expect_together` of them are inside the server's handler at the same moment, then
/// releases them and checks every result.
Task<void> many_in_flight(Connection& client, Connection& server, LifeRoot& gate, int n,
                          long expect_together) {
  Netref root = co_await client.root();
  Netref hold = co_await root.attr("hold");
  gate.target = expect_together;
  const std::uint64_t requests_in_before = server.stats().requests_in;
  std::vector<AsyncResult> results;
  results.reserve(n);
  for (int i = 0; i < n; ++i) {
    results.push_back(i % 2 ? root.callattr_async("hold", make_args(Value(i)))
                            : hold.call_async(make_args(Value(i))));
  }
  EXPECT_EQ(client.stats().pending, static_cast<std::size_t>(n));
  co_await gate.reached->wait();  // set by the handler when expect_together are in it
  EXPECT_EQ(gate.in_flight, expect_together);
  EXPECT_EQ(server.stats().requests_in - requests_in_before, static_cast<std::uint64_t>(expect_together));
  EXPECT_EQ(client.stats().pending, static_cast<std::size_t>(n));  // no reply has come
  EXPECT_TRUE(std::none_of(results.begin(), results.end(), [](const AsyncResult& r) { return r.ready(); }));
  gate.release->set();
  int correct = 0;
  for (int i = 0; i < n; ++i) {
    Any v = co_await results[i];
    if (v.value().as_int64() == 2 * i + 1) ++correct;
  }
  EXPECT_EQ(correct, n);
  EXPECT_EQ(gate.in_flight, 0);
  EXPECT_EQ(gate.max_in_flight, expect_together);
  EXPECT_EQ(client.stats().pending, 0u);
}

/// With room for them, all 5000 calls are inside the server's handler at once before any is
/// released; then every one of the 5000 gets its own correct result.
TEST_F(LifetimeTest, FiveThousandCallsInFlightAtOnce) {
  ConnectionOptions server_opts;
  server_opts.max_concurrent_requests = kInFlight;
  auto p = make_life_pair(loop_, {}, server_opts);
  run(many_in_flight(*p.client, *p.server, *p.root, kInFlight, kInFlight), 60s);
}

/// With the default limit (1024) the server runs exactly 1024 of the 5000 at once and reads
/// no further until one finishes; all 5000 still complete correctly (no deadlock, no loss).
TEST_F(LifetimeTest, FiveThousandCallsUnderTheDefaultConcurrencyLimit) {
  ASSERT_EQ(ConnectionOptions{}.max_concurrent_requests, 1024u);
  auto p = make_life_pair(loop_);
  run(many_in_flight(*p.client, *p.server, *p.root, kInFlight, 1024), 60s);
}

// ============================================================ D. Netrefs outliving a Connection

/// Every operation of a Netref whose connection is gone fails with Disconnected("connection
/// closed"); its local facts (type, id_pack, identity) stay readable.
Task<void> expect_dead(const Netref& ref, const std::string& type) {
  EXPECT_TRUE(ref.valid());
  EXPECT_FALSE(ref.connected());
  EXPECT_EQ(ref.type_name(), type);
  EXPECT_TRUE(ref.id_pack().is_tuple());
  EXPECT_TRUE(ref.same_object(Netref(ref)));
  EXPECT_TRUE(ref.is_instance_of("TestRoot"));
  auto message = [](const std::exception& e) { return std::string(e.what()); };
  std::string got = "no error";
  try {
    (void)co_await ref.callattr<std::int64_t>("add", 1, 2);
  } catch (const Disconnected& e) {
    got = message(e);
  }
  EXPECT_EQ(got, "connection closed");
  got = "no error";
  try {
    (void)co_await ref.callattr("echo", make_args(Value(1)));
  } catch (const Disconnected& e) {
    got = message(e);
  }
  EXPECT_EQ(got, "connection closed");
  EXPECT_THROW((void)ref.callattr_async("add", make_args(Value(1), Value(2))), Disconnected);
  EXPECT_THROW((void)ref.call_async(make_args(Value(1))), Disconnected);
  try {
    (void)co_await ref.getattr("answer");
    ADD_FAILURE() << "getattr on a dead connection";
  } catch (const Disconnected&) {
  }
  try {
    (void)co_await ref.str();
    ADD_FAILURE() << "str on a dead connection";
  } catch (const Disconnected&) {
  }
  try {
    (void)co_await ref.len();
    ADD_FAILURE() << "len on a dead connection";
  } catch (const Disconnected&) {
  }
}

/// The client Connection is destroyed (unique_ptr reset): its Netrefs, copies of them and a
/// result pending at the time all report the closed connection, and dropping them later is
/// harmless (no DEL, nothing dangling: the ASan/TSan builds check this).
Task<void> used_after_destruction(std::unique_ptr<Connection>& client, Connection& server) {
  Netref root = co_await client->root();
  Any made = co_await root.callattr("make");
  Netref obj = made.netref();
  Netref copy = obj;
  EXPECT_TRUE(obj.connected());
  EXPECT_GE(server.stats().exported, 2u);  // root and the made object
  AsyncResult pending = root.callattr_async("slow");
  int callback_runs = 0;
  bool callback_error = false;
  pending.add_callback([&](const AsyncResult& r) {
    ++callback_runs;
    callback_error = r.has_error();
  });
  co_await client->ping();  // slow() is now running on the server

  client.reset();

  EXPECT_TRUE(pending.ready());
  EXPECT_TRUE(pending.has_error());
  EXPECT_FALSE(pending.expired());
  EXPECT_THROW((void)pending.value(), Disconnected);
  EXPECT_THROW((void)co_await pending, Disconnected);
  EXPECT_EQ(callback_runs, 1);
  EXPECT_TRUE(callback_error);
  pending.set_expiry(1ms);  // done already: nothing to arm
  co_await expect_dead(root, "tests.TestRoot");
  co_await expect_dead(obj, "tests.TestRoot");
  EXPECT_TRUE(obj.same_object(copy));
  obj = Netref();  // dropping one copy, then the last: the state goes without a connection
  copy = Netref();
  made = Any();

  // The server saw the client vanish and released everything it exported to it.
  co_await server.wait_closed();
  EXPECT_TRUE(server.closed());
  EXPECT_EQ(server.stats().exported, 0u);
}

TEST_F(LifetimeTest, NetrefUsedAfterItsConnectionIsDestroyed) {
  auto p = make_rpc_pair(loop_);
  run(used_after_destruction(p.client, *p.server), 10s);
  EXPECT_FALSE(p.client);
}

/// After close() (the Connection object still alive) Netrefs report the closed connection the
/// same way; dropping them is harmless; new requests are refused; the server released its
/// exports.
Task<void> used_after_close(Connection& client, Connection& server) {
  Netref root = co_await client.root();
  Any made = co_await root.callattr("make");
  Netref obj = made.netref();
  made = Any();
  co_await client.close();
  EXPECT_TRUE(client.closed());
  co_await expect_dead(root, "tests.TestRoot");
  co_await expect_dead(obj, "tests.TestRoot");
  obj = Netref();  // dropped on a closed connection: nothing to send, nothing to crash
  EXPECT_THROW((void)client.async_request(rpc::Handler::kPing, make_args(Value("x"))), Disconnected);
  co_await server.wait_closed();
  EXPECT_EQ(server.stats().exported, 0u);
}

TEST_F(LifetimeTest, NetrefUsedAfterClose) {
  auto p = make_rpc_pair(loop_);
  run(used_after_close(*p.client, *p.server), 10s);
}

/// abort() likewise: the Netref says "connection closed"; a pending result says "aborted".
Task<void> used_after_abort(Connection& client) {
  Netref root = co_await client.root();
  AsyncResult pending = root.callattr_async("slow");
  co_await client.ping();
  client.abort();
  std::string why = "no error";
  try {
    (void)co_await pending;
  } catch (const Disconnected& e) {
    why = e.what();
  }
  EXPECT_EQ(why, "connection aborted");
  co_await expect_dead(root, "tests.TestRoot");
}

TEST_F(LifetimeTest, NetrefUsedAfterAbort) {
  auto p = make_rpc_pair(loop_);
  run(used_after_abort(*p.client), 10s);
}

/// Destroying a Connection whose exported objects themselves hold Netrefs (a callback the
/// server kept, capturing a Netref to a server object): the export table is dropped during
/// the close, those Netrefs die then without sending anything, and the server's Netref to the
/// callback reports the closed connection.
Task<void> exports_holding_netrefs(std::unique_ptr<Connection>& client, Connection& server,
                                   LifeRoot& root_obj) {
  Netref root = co_await client->root();
  Any got = co_await root.callattr("same");
  Netref inner = got.netref();
  got = Any();
  std::weak_ptr<rpc::detail::NetrefState> inner_state = inner.state();
  auto callback = std::make_shared<FunctionObject>(
      "cb", [inner](CallContext&, std::vector<Any>, Kwargs) -> Task<Any> { return inner.call(); });
  inner = Netref();  // only the callback holds it now
  (void)co_await root.callattr("keep", make_args(ObjectPtr(callback)));
  callback.reset();  // only the client's export table holds the callback now
  EXPECT_FALSE(inner_state.expired());
  EXPECT_TRUE(root_obj.kept.connected());

  client.reset();

  EXPECT_TRUE(inner_state.expired());  // released with the export table
  co_await server.wait_closed();
  EXPECT_FALSE(root_obj.kept.connected());
  EXPECT_THROW((void)root_obj.kept.call_async(), Disconnected);
  EXPECT_EQ(server.stats().exported, 0u);
  root_obj.kept = Netref();
}

TEST_F(LifetimeTest, DestroyedConnectionWhoseExportsHoldNetrefs) {
  auto p = make_life_pair(loop_);
  run(exports_holding_netrefs(p.client, *p.server, *p.root), 10s);
}

// =============================================================== E. reference counts and DEL

/// The same server object returned three times is one export and one client proxy of
/// refcount 3. Dropping two of the three handles sends nothing; dropping the last sends one
/// DEL, with count 3, and the server's table is back to the root alone.
Task<void> same_object_thrice(Connection& client, Connection& server, LifeRoot& root_obj) {
  Netref root = co_await client.root();
  const std::size_t base = server.stats().exported;
  EXPECT_EQ(base, 1u);  // the root
  EXPECT_EQ(root_obj.shared.use_count(), 1);
  Any a = co_await root.callattr("same");
  Any b = co_await root.callattr("same");
  Any c = co_await root.callattr("same");
  EXPECT_EQ(server.stats().exported, base + 1);
  EXPECT_EQ(root_obj.shared.use_count(), 2);  // root_obj and the export table
  EXPECT_EQ(a.netref().state(), b.netref().state());
  EXPECT_EQ(a.netref().state(), c.netref().state());
  EXPECT_EQ(a.netref().state()->refcount, 3u);
  EXPECT_EQ(client.stats().proxies, 2u);  // root and the shared object

  a = Any();
  b = Any();
  const std::uint64_t in_before = server.stats().requests_in;
  co_await client.ping();
  EXPECT_EQ(server.stats().requests_in - in_before, 1u);  // the ping alone: no DEL yet
  EXPECT_EQ(server.stats().exported, base + 1);

  c = Any();  // the last handle: DEL(obj, 3) is queued
  co_await client.ping();
  EXPECT_EQ(server.stats().requests_in - in_before, 3u);  // ping, one DEL, ping
  EXPECT_EQ(server.stats().exported, base);               // a count of 1 would have left it
  EXPECT_EQ(root_obj.shared.use_count(), 1);
  EXPECT_EQ(client.stats().proxies, 1u);
}

TEST_F(LifetimeTest, SameObjectThreeTimesIsOneExportReleasedByOneDel) {
  auto p = make_life_pair(loop_);
  run(same_object_thrice(*p.client, *p.server, *p.root));
}

/// Three boxings in one reply (a tuple of the same object) count like three replies.
Task<void> triple_in_one_reply(Connection& client, Connection& server, LifeRoot& root_obj) {
  Netref root = co_await client.root();
  const std::size_t base = server.stats().exported;
  Any t = co_await root.callattr("triple");
  std::vector<Any> items = t.items();
  t = Any();
  EXPECT_EQ(items.size(), 3u);
  if (items.size() != 3) co_return;
  EXPECT_EQ(server.stats().exported, base + 1);
  EXPECT_EQ(items[0].netref().state(), items[2].netref().state());
  EXPECT_EQ(items[0].netref().state()->refcount, 3u);
  // Still usable as the object it is.
  EXPECT_EQ(co_await items[1].netref().callattr<std::int64_t>("add", 2, 2), 4);
  items.clear();
  co_await client.ping();
  EXPECT_EQ(server.stats().exported, base);
  EXPECT_EQ(root_obj.shared.use_count(), 1);
}

TEST_F(LifetimeTest, TupleOfTheSameObjectCountsEachBoxing) {
  auto p = make_life_pair(loop_);
  run(triple_in_one_reply(*p.client, *p.server, *p.root));
}

/// Two distinct objects are two exports and two proxies, released independently; a fresh
/// object per call is released (destroyed) by its DEL.
Task<void> two_objects(Connection& client, Connection& server, LifeRoot& root_obj) {
  Netref root = co_await client.root();
  const std::size_t base = server.stats().exported;
  Any same = co_await root.callattr("same");
  Any other = co_await root.callattr("other");
  EXPECT_EQ(server.stats().exported, base + 2);
  EXPECT_FALSE(same.netref().same_object(other.netref()));
  EXPECT_NE(same.netref().id_pack(), other.netref().id_pack());
  EXPECT_EQ(same.netref().state()->refcount, 1u);
  EXPECT_EQ(other.netref().state()->refcount, 1u);
  EXPECT_EQ(client.stats().proxies, 3u);

  other = Any();
  co_await client.ping();
  EXPECT_EQ(server.stats().exported, base + 1);
  EXPECT_EQ(root_obj.other_obj.use_count(), 1);
  EXPECT_EQ(root_obj.shared.use_count(), 2);
  EXPECT_EQ(co_await same.netref().callattr<std::int64_t>("add", 40, 2), 42);  // the other is intact

  same = Any();
  co_await client.ping();
  EXPECT_EQ(server.stats().exported, base);

  Any fresh = co_await root.callattr("fresh");
  EXPECT_EQ(server.stats().exported, base + 1);
  EXPECT_FALSE(root_obj.last_fresh.expired());
  fresh = Any();
  co_await client.ping();
  EXPECT_EQ(server.stats().exported, base);
  EXPECT_TRUE(root_obj.last_fresh.expired());  // the table held the only reference
}

TEST_F(LifetimeTest, TwoDistinctObjectsAreTwoExports) {
  auto p = make_life_pair(loop_);
  run(two_objects(*p.client, *p.server, *p.root));
}

// ---- the client's DEL on the wire, against a raw 5.x server

std::int64_t handler_of(const Value& msg) { return msg.as_tuple().at(2).as_tuple().at(0).as_int64(); }

std::string callattr_name(const Value& msg) {
  if (handler_of(msg) != static_cast<std::int64_t>(rpc::Handler::kCallAttr)) return "";
  return msg.as_tuple().at(2).as_tuple().at(1).as_tuple().at(1).as_tuple().at(1).as_tuple().at(1).as_str();
}

const Value kThing = T({Value("tests.Thing"), Value(7), Value(99)});
const Value kOther = T({Value("tests.Thing"), Value(7), Value(100)});

/// same → a reference to kThing, other → kOther, barrier → "ok", DEL → None (the holder
/// drops it), anything else unanswered.
std::optional<Value> thing_server(const Value& msg) {
  if (handler_of(msg) == static_cast<std::int64_t>(rpc::Handler::kDel))
    return T({label(rpc::Label::kValue), Value()});
  const std::string name = callattr_name(msg);
  if (name == "same") return T({label(rpc::Label::kRemoteRef), kThing});
  if (name == "other") return T({label(rpc::Label::kRemoteRef), kOther});
  if (name == "barrier") return T({label(rpc::Label::kValue), Value("ok")});
  return std::nullopt;
}

std::vector<Value> dels_in(const std::vector<Value>& log) {
  std::vector<Value> out;
  for (const Value& msg : log) {
    if (handler_of(msg) == static_cast<std::int64_t>(rpc::Handler::kDel)) out.push_back(msg.as_tuple().at(2));
  }
  return out;
}

/// What a DEL(id_pack, count) request body is on the wire (§10.2, §15.2).
Value del_body(const Value& id_pack, std::int64_t count) {
  return T({handler(rpc::Handler::kDel),
            T({label(rpc::Label::kTuple), T({T({label(rpc::Label::kLocalRef), id_pack}),
                                             T({label(rpc::Label::kValue), Value(count)})})})});
}

Task<void> del_counts(Connection& c, const std::vector<Value>& log) {
  Netref root = co_await c.root();
  Any a = co_await root.callattr("same");
  Any b = co_await root.callattr("same");
  Any x = co_await root.callattr("same");
  Any o = co_await root.callattr("other");
  EXPECT_EQ(a.netref().state()->refcount, 3u);
  EXPECT_EQ(o.netref().state()->refcount, 1u);
  a = Any();
  b = Any();
  EXPECT_EQ(co_await root.callattr<std::string>("barrier"), "ok");
  EXPECT_TRUE(dels_in(log).empty());  // one handle left: nothing sent
  x = Any();
  EXPECT_EQ(co_await root.callattr<std::string>("barrier"), "ok");
  std::vector<Value> dels = dels_in(log);
  EXPECT_EQ(dels.size(), 1u);
  if (!dels.empty()) {
    EXPECT_EQ(dels[0], del_body(kThing, 3)) << dels[0].repr(300);
  }
  o = Any();
  EXPECT_EQ(co_await root.callattr<std::string>("barrier"), "ok");
  dels = dels_in(log);
  EXPECT_EQ(dels.size(), 2u);
  if (dels.size() == 2) {
    EXPECT_EQ(dels[1], del_body(kOther, 1)) << dels[1].repr(300);
  }
  EXPECT_EQ(c.stats().pending, 0u);  // the replies to the DELs were dropped, not kept
  EXPECT_FALSE(c.closed());
}

TEST_F(LifetimeTest, DelCarriesTheProxyRefcount) {
  auto p = make_raw_server_peer(loop_);
  std::vector<Value> log;
  TaskGroup server(loop_);
  server.spawn(serve_raw(*p.raw, log, thing_server));
  run(del_counts(*p.client, log));
  p.client->abort();
  run(server.wait());
}

// ---- the server's table against DELs a raw 5.x client sends

/// The reply (msg type, body) to `seq`, skipping anything else.
Task<std::pair<std::int64_t, Value>> reply_to(Channel& ch, std::int64_t seq) {
  for (;;) {
    Bytes bytes = co_await ch.recv();
    Value v = brine::load(bytes.span());
    const auto& t = v.as_tuple();
    if (t[1].as_int64() == seq && t[0].as_int64() != 1) co_return std::make_pair(t[0].as_int64(), t[2]);
  }
}

/// Three CALLATTR same() replies carry one id_pack; DEL(2) leaves the export (one boxing is
/// not covered), DEL(1) removes it and frees the table's reference; one more DEL is a KeyError
/// and the connection stays up.
Task<void> server_refcount(Connection& server, Channel& raw, LifeRoot& root_obj) {
  raw.send(OutFrame::copied(
      payload5(1, 0, T({handler(rpc::Handler::kGetRoot), T({label(rpc::Label::kValue), T({})})}))));
  auto got_root = co_await reply_to(raw, 0);
  EXPECT_EQ(got_root.first, 2);
  EXPECT_EQ(got_root.second.as_tuple().at(0), label(rpc::Label::kRemoteRef));
  const Value root_id = got_root.second.as_tuple().at(1);
  EXPECT_EQ(server.stats().exported, 1u);

  const Value none_args = T({label(rpc::Label::kValue), T({})});
  const Value same_call = T({handler(rpc::Handler::kCallAttr),
                             T({label(rpc::Label::kTuple),
                                T({T({label(rpc::Label::kLocalRef), root_id}),
                                   T({label(rpc::Label::kValue), Value("same")}), none_args, none_args})})});
  Value same_id;
  for (std::int64_t seq = 1; seq <= 3; ++seq) {
    raw.send(OutFrame::copied(payload5(1, seq, same_call)));
    auto r = co_await reply_to(raw, seq);
    EXPECT_EQ(r.first, 2);
    EXPECT_EQ(r.second.as_tuple().at(0), label(rpc::Label::kRemoteRef));
    if (seq == 1) same_id = r.second.as_tuple().at(1);
    EXPECT_EQ(r.second.as_tuple().at(1), same_id);  // the same id_pack every time
  }
  EXPECT_EQ(server.stats().exported, 2u);
  EXPECT_EQ(root_obj.shared.use_count(), 2);

  raw.send(OutFrame::copied(payload5(1, 4, del_body(same_id, 2))));
  auto d1 = co_await reply_to(raw, 4);
  EXPECT_EQ(d1.first, 2);
  EXPECT_EQ(d1.second, T({label(rpc::Label::kValue), Value()}));
  EXPECT_EQ(server.stats().exported, 2u);  // sent 3 times, 2 released: still held
  EXPECT_EQ(root_obj.shared.use_count(), 2);

  raw.send(OutFrame::copied(payload5(1, 5, del_body(same_id, 1))));
  auto d2 = co_await reply_to(raw, 5);
  EXPECT_EQ(d2.first, 2);
  EXPECT_EQ(server.stats().exported, 1u);  // the root alone
  EXPECT_EQ(root_obj.shared.use_count(), 1);

  raw.send(OutFrame::copied(payload5(1, 6, del_body(same_id, 1))));
  auto d3 = co_await reply_to(raw, 6);
  EXPECT_EQ(d3.first, 3);  // an exception: the id is no longer exported
  if (d3.first == 3) {
    EXPECT_EQ(d3.second.as_tuple().at(0).as_tuple().at(1).as_str(), "KeyError");
  }
  EXPECT_FALSE(server.closed());
  EXPECT_EQ(server.stats().exported, 1u);
}

TEST_F(LifetimeTest, ServerRefcountFollowsDelCounts) {
  auto root = std::make_shared<LifeRoot>();
  auto p = make_raw_client_peer(loop_, root);
  run(server_refcount(*p.server, *p.raw, *root));
}

}  // namespace
}  // namespace tether::testing
