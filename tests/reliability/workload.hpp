#pragma once
// The calls the fault tests make, and what they check of the outcome. Three workloads, each on
// a connection of its own, run side by side on the caller's loop:
//
//   sync       one echo(i) at a time, each awaited before the next
//   pipelined  all echo(i) sent at once (callattr_async), then awaited
//   callbacks  apply(f, i) one at a time: the server calls f(i) back on the client
//
// Every call has a deadline (sync_request_timeout, or the AsyncResult's expiry). A call
// succeeds with the value its own request asks for (a reply given to the wrong caller shows as
// a wrong value), or fails with one of tether's errors (Timeout, Disconnected, another
// tether::Error); anything else is "unclear". Ids are unique per run, so the server's record
// of executed echo ids can be checked against the client's successes.

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "fault_service.hpp"
#include "tether/base/error.hpp"
#include "tether/loop/gather.hpp"
#include "tether/loop/time.hpp"
#include "tether/rpc/bind.hpp"
#include "tether/rpc/remote_exception.hpp"
#include "tether/service/client.hpp"

namespace tether::testing {

struct WorkloadSpec {
  std::string host;
  std::uint16_t port = 0;
  int sync_calls = 20;
  int pipelined_calls = 200;
  int callbacks = 10;
  std::chrono::milliseconds deadline{5000};
  std::int64_t first_id = 0;  // ids first_id, first_id + 1, ...
  /// kAuto: connect() probes with a GETROOT (under the same deadline); k5: no probe.
  rpc::Generation generation = rpc::Generation::kAuto;
};

struct Tally {
  std::string kind;
  int ok = 0;
  int failed = 0;   // with a tether error (Timeout, Disconnected, ...)
  int wrong = 0;    // a value that is not the answer to this call's request
  int unclear = 0;  // an exception that is not a tether error
  std::chrono::milliseconds longest{0};
  std::vector<std::int64_t> ok_ids;   // echo ids that succeeded
  std::map<std::string, int> errors;  // error text -> how many
};

namespace detail {

inline std::string error_kind(const std::exception& e) {
  std::string what = e.what();
  if (what.size() > 80) what = what.substr(0, 80) + "...";
  if (dynamic_cast<const Timeout*>(&e)) return "Timeout: " + what;
  if (dynamic_cast<const Disconnected*>(&e)) return "Disconnected: " + what;
  return "Error: " + what;
}

/// Records the end of one call.
inline void settle(Tally& t, std::chrono::steady_clock::time_point began) {
  const auto took =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - began);
  t.longest = std::max(t.longest, took);
}

/// Awaits the call `make()` starts and records how it ended: ok if it returned `expected` (and
/// then `echo_id`, unless negative, among the ok ids), wrong if it returned anything else,
/// failed or unclear if it threw.
template <class Make>
Task<void> settle_call(Tally& t, Make make, std::int64_t expected, std::int64_t echo_id,
                       std::chrono::steady_clock::time_point began) {
  try {
    std::int64_t v = co_await make();
    if (v == expected) {
      ++t.ok;
      if (echo_id >= 0) t.ok_ids.push_back(echo_id);
    } else {
      ++t.wrong;
    }
  } catch (const Error& e) {
    ++t.failed;
    ++t.errors[error_kind(e)];
  } catch (const std::exception& e) {
    ++t.unclear;
    ++t.errors[std::string("unclear: ") + e.what()];
  }
  settle(t, began);
}

inline Task<std::int64_t> int_result(AsyncResult r) {
  Any a = co_await std::move(r);
  std::int64_t v = co_await from_any<std::int64_t>(std::move(a));
  co_return v;
}

inline ClientOptions client_options(const WorkloadSpec& s) {
  ClientOptions o;
  o.connection.sync_request_timeout = s.deadline;
  o.net.connect_timeout = s.deadline;
  o.connection.generation = s.generation;
  return o;
}

/// Connects; null (and every call counted failed) if it cannot.
inline Task<std::unique_ptr<Connection>> open(const WorkloadSpec& s, Tally& t, int calls) {
  std::unique_ptr<Connection> conn;
  std::string why;
  try {
    ClientOptions o = client_options(s);
    std::unique_ptr<Connection> c = co_await connect(s.host, s.port, o);
    conn = std::move(c);
  } catch (const Error& e) {
    why = "connect: " + error_kind(e);
  }
  if (!conn) {
    t.failed += calls;
    t.errors[why] += calls;
  }
  co_return conn;
}

inline Task<void> close_quietly(std::unique_ptr<Connection> conn) {
  try {
    co_await conn->close();
  } catch (const Error&) {
  }
}

}  // namespace detail

inline Task<Tally> sync_workload(WorkloadSpec s) {
  Tally t;
  t.kind = "sync";
  std::unique_ptr<Connection> conn = co_await detail::open(s, t, s.sync_calls);
  if (!conn) co_return t;
  for (int k = 0; k < s.sync_calls; ++k) {
    const std::int64_t id = s.first_id + k;
    const auto began = std::chrono::steady_clock::now();
    auto call = [&conn, id] { return conn->callattr<std::int64_t>("echo", id); };
    co_await detail::settle_call(t, call, echo_of(id), id, began);
  }
  co_await detail::close_quietly(std::move(conn));
  co_return t;
}

inline Task<Tally> pipelined_workload(WorkloadSpec s) {
  Tally t;
  t.kind = "pipelined";
  std::unique_ptr<Connection> conn = co_await detail::open(s, t, s.pipelined_calls);
  if (!conn) co_return t;
  Netref root;
  bool have_root = false;
  try {
    Netref r = co_await conn->root();
    root = std::move(r);
    have_root = true;
  } catch (const Error& e) {
    t.failed += s.pipelined_calls;
    t.errors["root: " + detail::error_kind(e)] += s.pipelined_calls;
  }
  if (!have_root) {
    co_await detail::close_quietly(std::move(conn));
    co_return t;
  }
  const auto began = std::chrono::steady_clock::now();  // the calls' deadlines run from here on
  std::vector<AsyncResult> pending;
  pending.reserve(static_cast<std::size_t>(s.pipelined_calls));
  for (int k = 0; k < s.pipelined_calls; ++k) {
    AsyncResult r = root.callattr_async("echo", make_args(s.first_id + k));
    r.set_expiry(s.deadline);
    pending.push_back(std::move(r));
  }
  for (int k = 0; k < s.pipelined_calls; ++k) {
    const std::int64_t id = s.first_id + k;
    auto call = [r = pending[static_cast<std::size_t>(k)]] { return detail::int_result(r); };
    co_await detail::settle_call(t, call, echo_of(id), id, began);
  }
  co_await detail::close_quietly(std::move(conn));
  co_return t;
}

inline std::int64_t client_callback(std::int64_t x) { return callback_of(x); }

inline Task<Tally> callback_workload(WorkloadSpec s) {
  Tally t;
  t.kind = "callbacks";
  std::unique_ptr<Connection> conn = co_await detail::open(s, t, s.callbacks);
  if (!conn) co_return t;
  ObjectPtr f = make_function_object("f", &client_callback);
  for (int k = 0; k < s.callbacks; ++k) {
    const std::int64_t x = s.first_id + k;
    const auto began = std::chrono::steady_clock::now();
    auto call = [&conn, &f, x] { return conn->callattr<std::int64_t>("apply", f, x); };
    co_await detail::settle_call(t, call, callback_of(x) + 1, -1, began);
  }
  f.reset();
  co_await detail::close_quietly(std::move(conn));
  co_return t;
}

/// The three workloads side by side (ids: sync from first_id, pipelined from first_id + 10^6).
inline Task<std::vector<Tally>> all_workloads(WorkloadSpec s) {
  WorkloadSpec p = s;
  p.first_id = s.first_id + 1000000;
  std::vector<Task<Tally>> tasks;
  tasks.push_back(sync_workload(s));
  tasks.push_back(pipelined_workload(p));
  tasks.push_back(callback_workload(s));
  std::vector<Tally> out = co_await gather(std::move(tasks));
  co_return out;
}

inline std::string describe(const Tally& t) {
  std::string s = t.kind + ": " + std::to_string(t.ok) + " ok, " + std::to_string(t.failed) + " failed, " +
                  std::to_string(t.wrong) + " wrong, " + std::to_string(t.unclear) + " unclear, longest " +
                  std::to_string(t.longest.count()) + " ms";
  for (const auto& [what, n] : t.errors) s += "\n    " + std::to_string(n) + " x " + what;
  return s;
}

/// What every run must show: no wrong value, no unclear error, every call ended by its
/// deadline (plus `slack` for the loop to notice), and every echo the client saw succeed was
/// executed by the server exactly once (`executed`: the server's record of echo ids).
inline void expect_sound(const std::vector<Tally>& tallies, const std::vector<std::int64_t>& executed,
                         std::chrono::milliseconds deadline, std::chrono::milliseconds slack) {
  std::multiset<std::int64_t> ran(executed.begin(), executed.end());
  for (const Tally& t : tallies) {
    SCOPED_TRACE(describe(t));
    EXPECT_EQ(t.wrong, 0) << "a reply reached the wrong caller";
    EXPECT_EQ(t.unclear, 0);
    EXPECT_LE(t.longest, deadline + slack) << "a call outlived its deadline";
    for (std::int64_t id : t.ok_ids) {
      EXPECT_EQ(ran.count(id), 1u) << "echo(" << id << ") succeeded at the client but ran " << ran.count(id)
                                   << " times at the server";
    }
  }
  std::set<std::int64_t> distinct(executed.begin(), executed.end());
  EXPECT_EQ(distinct.size(), executed.size()) << "a request was executed twice";
}

}  // namespace tether::testing
