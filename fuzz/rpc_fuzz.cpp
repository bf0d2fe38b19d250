// An rpc Connection (rpc/connection.hpp) fed a hostile peer: the input is a sequence of
// payloads that the peer sends as channel frames, one at a time (the loop runs until idle after
// each) or all at once. The Connection either serves a small root object (add, echo, fail,
// call(fn, x) -> fn(x) back on the peer, make, answer) or is a client with a call in flight
// (GETROOT, then root.compute(7), then str() of a reference result) whose replies come from the
// input. Whatever arrives, it must never crash, leak or spin: each step goes idle within a
// bounded number of loop turns; everything it sends is whole frames holding messages of its
// generation; after the peer's EOF (or reset) it is closed, with no error or a tether::Error
// that says something, and the client's call has ended; destroyed, it leaves nothing on the loop.
//
// Input: [mode] then repeated [u16 little-endian length][that many payload bytes].
//   mode bit 0: 0 = serve, 1 = client;  bits 1-2: generation 5, 6, auto (first 5), auto (first 6)
//   bit 3: fast decoder off;  bit 4: all frames at once;  bit 5: small concurrency limits
//   bit 6: end with a reset instead of EOF

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "frame_reference.hpp"
#include "fuzz_util.hpp"
#include "pipe_driver.hpp"
#include "rpc/connection_core.hpp"
#include "tether/base/buffer.hpp"
#include "tether/base/error.hpp"
#include "tether/base/log.hpp"
#include "tether/brine/codec.hpp"
#include "tether/channel/channel.hpp"
#include "tether/channel/frame.hpp"
#include "tether/loop/task.hpp"
#include "tether/rpc/connection.hpp"
#include "tether/rpc/object.hpp"
#include "tether/rpc/py_error.hpp"
#include "tether/stream/buffered_stream.hpp"
#include "tether/stream/mem_pipe.hpp"

namespace tf = tether::fuzz;
using tether::Any;
using tether::brine::Value;

namespace {

constexpr std::size_t kMaxFrames = 64;
constexpr int kMaxTurnsPerStep = 20000;

/// The root's methods, apart from the object so that the method objects lent to the peer
/// (which may outlive a call) hold nothing.
tether::Task<Any> run_method(std::string name, std::vector<Any> args) {
  if (name == "exposed_add") {
    const std::int64_t a = args.at(0).value().as_int64();
    const std::int64_t b = args.size() > 1 ? args[1].value().as_int64() : 0;
    co_return Any(Value(a + b));
  }
  if (name == "exposed_echo") co_return args.at(0);
  if (name == "exposed_fail") throw tether::PyError("ValueError", args.at(0).value().as_str());
  if (name == "exposed_call") {
    // A callback to the peer: its reply, if any, comes from the input too.
    tether::Netref fn = args.at(0).netref();
    Any r = co_await fn.call(tether::make_args(args.at(1)));
    co_return r;
  }
  if (name == "exposed_make") {
    co_return Any(tether::make_function("item", [](std::vector<Any> a, tether::Kwargs) {
      return a.empty() ? Any(Value(0)) : a[0];
    }));
  }
  throw tether::attribute_error(name);
}

class FuzzRoot : public tether::Object {
 public:
  [[nodiscard]] std::string type_name() const override { return "fuzz.Root"; }
  // A fixed id_pack, so that seeds can name the root without asking for it first.
  [[nodiscard]] std::optional<Value> fixed_id_pack() const override {
    return Value::make_tuple(Value("fuzz.Root"), Value(1), Value(1));
  }
  [[nodiscard]] bool has_attr(std::string_view n) const override {
    return n == "exposed_add" || n == "exposed_echo" || n == "exposed_fail" || n == "exposed_call" ||
           n == "exposed_make" || n == "exposed_answer";
  }
  [[nodiscard]] std::vector<std::string> attr_names() const override {
    return {"exposed_add", "exposed_echo", "exposed_fail", "exposed_call", "exposed_make", "exposed_answer"};
  }
  Any get_attr(tether::CallContext&, std::string_view name) override {
    if (name == "exposed_answer") return Any(Value(42));
    std::string n(name);
    return Any(std::static_pointer_cast<tether::Object>(std::make_shared<tether::FunctionObject>(
        n,
        [n](tether::CallContext&, std::vector<Any> args, tether::Kwargs) { return run_method(n, std::move(args)); },
        "builtins.method")));
  }
  tether::Task<Any> call_attr(tether::CallContext&, std::string_view name, std::vector<Any> args,
                              tether::Kwargs) override {
    return run_method(std::string(name), std::move(args));
  }
};

/// The client's call: GETROOT, root.compute(7), and str() of the result when it is a reference.
tether::Task<void> client_session(tether::Connection& c, int& state) {
  try {
    tether::Netref root = co_await c.root();
    state = 1;
    Any r = co_await root.callattr(std::string("compute"), tether::make_args(Value(7)));
    state = 2;
    if (r.is_netref()) {
      std::string s = co_await r.netref().str();
      (void)s;
    } else {
      (void)r.repr();
    }
    state = 3;
  } catch (const std::exception&) {
    state = -1;
  }
}

/// The peer's end of the pipe: writes frames, collects what the connection sends.
struct Peer {
  std::unique_ptr<tether::MemPipeEnd> end;
  tether::Buffer got;
  std::string pending;  // frame bytes not yet taken by the pipe
  bool gone = false;    // reset: nothing more is read or written

  void drain() {
    if (gone) return;
    const std::size_t n = end->available();
    if (n != 0) {
      const std::size_t r = end->try_read(got, n);
      FUZZ_CHECK(r == n);
    }
  }
  void push() {
    if (pending.empty() || gone) return;
    iovec iov{pending.data(), pending.size()};
    try {
      const std::size_t n = end->try_write(std::span<const iovec>(&iov, 1));
      if (n != tether::Transport::kWouldBlock) pending.erase(0, n);  // the pipe is full: later
    } catch (const tether::Disconnected&) {
      pending.clear();  // the connection hung up: the rest is never read
    }
  }
};

/// Turns the loop until nothing is ready and every queued input byte is in the pipe, moving
/// what the connection writes to the peer as it goes. More turns than kMaxTurnsPerStep: a spin.
void settle(Peer& peer) {
  tether::EventLoop& loop = tf::fuzz_loop();
  for (int turns = 0;; ++turns) {
    peer.push();
    peer.drain();
    if (loop.stats().ready == 0 && peer.pending.empty()) break;
    if (turns >= kMaxTurnsPerStep) {
      std::fprintf(stderr, "no idle after %d loop turns (ready %zu, %zu bytes unsent)\n", turns,
                   static_cast<std::size_t>(loop.stats().ready), peer.pending.size());
    }
    FUZZ_CHECK(turns < kMaxTurnsPerStep);
    loop.run_once(tether::Duration::zero());
  }
}

/// Every payload the connection sent is one message of generation `gen`.
void check_messages(std::string_view wire, tether::rpc::Generation gen) {
  tether::ChannelOptions opts;
  opts.max_frame_size = opts.max_payload_size = std::size_t{1} << 30;
  const tf::RefDecode d = tf::ref_decode(wire, opts);
  FUZZ_CHECK(d.end == tf::RefEnd::kClean);
  if (gen == tether::rpc::Generation::kAuto) {
    FUZZ_CHECK(d.payloads.empty());  // nothing is sent before the generation is known
    return;
  }
  for (const std::string& p : d.payloads) {
    FUZZ_CHECK(!p.empty());
    Value v;
    std::int64_t msg = 0;
    if (gen == tether::rpc::Generation::k6) {
      msg = static_cast<std::uint8_t>(p[0]);
      v = tether::brine::load(std::string_view(p).substr(1));
      FUZZ_CHECK(v.is_tuple() && v.as_tuple().size() == 2 && v.as_tuple()[0].is_int64());
    } else {
      v = tether::brine::load(std::string_view(p));
      FUZZ_CHECK(v.is_tuple() && v.as_tuple().size() == 3 && v.as_tuple()[0].is_int64() &&
                 v.as_tuple()[1].is_int64());
      msg = v.as_tuple()[0].as_int64();
    }
    FUZZ_CHECK(msg >= 1 && msg <= 3);
  }
}

/// The connection's error, if any, is a tether::Error with a message.
void check_error(std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const tether::Error& x) {
    FUZZ_CHECK(x.what()[0] != '\0');
  } catch (const std::exception& x) {
    std::fprintf(stderr, "connection closed with a non-tether error: %s\n", x.what());
    FUZZ_CHECK(!"connection error is a tether::Error");
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  tether::set_log_level(tether::LogLevel::kOff);  // every bad message is logged otherwise
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  tf::Input in(data, size);
  const std::uint8_t mode = in.u8();
  const bool client = (mode & 1) != 0;
  const bool fast_off = (mode & 8) != 0;
  const bool at_once = (mode & 16) != 0;
  const bool small_limits = (mode & 32) != 0;
  const bool reset = (mode & 64) != 0;
  std::vector<std::string_view> frames;
  while (in.remaining() > 0 && frames.size() < kMaxFrames) {
    const std::string_view p = in.bytes(in.u16());
    if (!p.empty()) frames.push_back(p);  // a channel never sends an empty frame
  }

  tether::ConnectionOptions opts;
  switch ((mode >> 1) & 3) {
    case 0: opts.generation = tether::rpc::Generation::k5; break;
    case 1: opts.generation = tether::rpc::Generation::k6; break;
    case 2: opts.first_generation = tether::rpc::Generation::k5; break;
    default: opts.first_generation = tether::rpc::Generation::k6; break;
  }
  if (small_limits) {
    opts.max_concurrent_requests = 2;
    opts.max_inflight_decoded_bytes = 4096;
    opts.limits.max_depth = 8;
  }
  opts.name = "fuzz";

  tether::EventLoop& loop = tf::fuzz_loop();
  const long tasks_before = tether::live_task_count();
  int state = 0;
  {
    auto pipe = tether::make_mem_pipe(loop, std::size_t{1} << 20);
    Peer peer;
    peer.end = std::move(pipe.first);
    auto conn = std::make_unique<tether::Connection>(
        std::make_unique<tether::Channel>(std::make_unique<tether::BufferedStream>(std::move(pipe.second))),
        std::make_shared<FuzzRoot>(), opts);
    tether::rpc::detail::ConnectionAccess::core(*conn).decoder().set_fast(!fast_off);
    conn->start();
    std::optional<tether::Task<void>> session;
    if (client) {
      session.emplace(client_session(*conn, state));
      auto h = session->handle();
      h.promise().set_continuation(std::noop_coroutine());
      loop.schedule(h);
    }
    settle(peer);
    for (std::string_view f : frames) {
      const tether::Bytes wire = tether::encode_frame(f);
      peer.pending.append(wire.str());
      if (!at_once) settle(peer);
    }
    settle(peer);
    if (reset) {
      peer.drain();
      peer.end->abort();
      peer.gone = true;
    } else {
      try {
        peer.end->shutdown_write();
      } catch (const tether::Error&) {  // the connection hung up first
      }
    }
    settle(peer);
    if (!conn->closed()) std::fprintf(stderr, "still open after the peer's %s\n", reset ? "reset" : "EOF");
    FUZZ_CHECK(conn->closed());
    check_error(conn->error());
    if (session) {
      FUZZ_CHECK(session->done());
      FUZZ_CHECK(state == 3 || state == -1);
    }
    check_messages(peer.got.view(), conn->generation());
    session.reset();
    conn.reset();
    peer.end.reset();
  }
  tf::PipeDriver::settle();
  const tether::LoopStats st = loop.stats();
  FUZZ_CHECK(st.watchers == 0 && st.timers == 0 && st.ready == 0);
  FUZZ_CHECK(tether::live_task_count() == tasks_before);
  return 0;
}
