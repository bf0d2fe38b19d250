// The fast decoder (src/rpc/decode.cpp) against the general path: for a corpus of requests and
// replies — valid, oddly shaped, referring to unknown objects, malformed, mutated byte by byte —
// a connection with the fast path and one without it must answer with the same frames, end in
// the same state (open or closed, and why) and hold the same objects and proxies.

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <random>
#include <regex>

#include "brine/random_value.hpp"
#include "rpc/connection_core.hpp"
#include "rpc_fixture.hpp"
#include "tether/brine/codec.hpp"

namespace tether::testing {
namespace {

using brine::Value;
using rpc::Generation;

Value T(std::initializer_list<Value> items) { return Value::tuple(items); }
Value boxed(Value v) { return T({Value(1), std::move(v)}); }

std::string envelope(Generation gen, std::int64_t msg, std::int64_t seq, const Value& body) {
  std::string out;
  if (gen == Generation::k6) {
    out.push_back(static_cast<char>(msg));
    brine::dump_into(T({Value(seq), body}), out);
  } else {
    brine::dump_into(T({Value(msg), Value(seq), body}), out);
  }
  return out;
}

/// (msg, seq, body) of a frame in either generation.
struct Parsed {
  std::int64_t msg = 0;
  std::int64_t seq = 0;
  Value body;
};

Parsed parse(Generation gen, const Bytes& b) {
  Parsed p;
  if (gen == Generation::k6) {
    p.msg = b[0];
    Value v = brine::load(b.span().subspan(1));
    p.seq = v.as_tuple()[0].as_int64();
    p.body = v.as_tuple()[1];
  } else {
    Value v = brine::load(b.span());
    p.msg = v.as_tuple()[0].as_int64();
    p.seq = v.as_tuple()[1].as_int64();
    p.body = v.as_tuple()[2];
  }
  return p;
}

/// Object addresses differ between two runs; nothing else may.
std::string normalized(const std::string& s) {
  static const std::regex kAddress("0x[0-9a-f]+");
  return std::regex_replace(s, kAddress, "0x?");
}

struct Outcome {
  std::vector<std::string> frames;  // what the connection sent, decoded and normalised
  std::uint64_t fast = 0;           // messages the fast decoder took (not compared)
  bool closed = false;
  std::string error;
  std::string result;  // replies test: what the AsyncResult ended with
  std::size_t exported = 0;
  std::size_t proxies = 0;

  bool operator==(const Outcome& o) const {
    return frames == o.frames && closed == o.closed && error == o.error && result == o.result &&
           exported == o.exported && proxies == o.proxies;
  }
};

void PrintTo(const Outcome& o, std::ostream* os) {
  *os << "closed=" << o.closed << " error='" << o.error << "' result='" << o.result
      << "' exported=" << o.exported << " proxies=" << o.proxies << " frames:";
  for (const auto& f : o.frames) *os << "\n  " << f;
}

std::string error_text(std::exception_ptr e) {
  if (!e) return "";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return normalized(x.what());
  }
}

/// A server Connection (fast path on or off) and a raw channel playing its client.
struct Peer {
  std::unique_ptr<Connection> conn;
  std::unique_ptr<Channel> raw;
  Generation gen;
};

Peer make_peer(EventLoop& loop, bool fast, Generation gen, ObjectPtr root) {
  auto pipe = make_mem_pipe(loop, 1 << 20);
  Peer p;
  p.gen = gen;
  p.raw = std::make_unique<Channel>(std::make_unique<BufferedStream>(std::move(pipe.first)));
  ConnectionOptions o;
  o.generation = gen;
  o.sync_request_timeout = std::chrono::seconds(5);
  p.conn = std::make_unique<Connection>(
      std::make_unique<Channel>(std::make_unique<BufferedStream>(std::move(pipe.second))), std::move(root),
      o);
  rpc::detail::ConnectionAccess::core(*p.conn).decoder().set_fast(fast);
  p.conn->start();
  return p;
}

/// Frames from the connection until the reply to `seq` (included), or until it hangs up.
Task<bool> collect_until(Peer& p, std::int64_t seq, std::vector<std::string>& frames) {
  for (;;) {
    Bytes b;
    bool eof = false;
    try {
      b = co_await p.raw->recv();
    } catch (const std::exception&) {
      eof = true;
    }
    if (eof) co_return false;
    Parsed m = parse(p.gen, b);
    frames.push_back(fmt::format("{} {} {}", m.msg, m.seq, normalized(m.body.repr())));
    if (m.msg != 1 && m.seq == seq) co_return true;
  }
}

/// The id_packs a client learns first: the root's (GETROOT) and root.add's (GETATTR).
struct Known {
  Value root;
  Value method;
};

Task<Known> handshake(Peer& p) {
  std::vector<std::string> ignored;
  p.raw->send(OutFrame::copied(envelope(p.gen, 1, 0, T({Value(3), T({Value(2), T({})})}))));
  Bytes b = co_await p.raw->recv();
  Known k;
  k.root = parse(p.gen, b).body.as_tuple()[1];
  Value getattr = T({Value(4), T({Value(2), T({T({Value(3), k.root}), boxed(Value("add"))})})});
  p.raw->send(OutFrame::copied(envelope(p.gen, 1, 1, getattr)));
  Bytes m = co_await p.raw->recv();
  k.method = parse(p.gen, m).body.as_tuple()[1];
  co_return k;
}

// ------------------------------------------------------------------------------- the corpus

/// Random requests built from the known id_packs, with every kind of deviation mixed in.
class Corpus {
 public:
  explicit Corpus(std::uint64_t seed) : rng_(seed), values_(seed ^ 0x5eed) {}

  /// A request body: (handler, boxed args).
  Value request(const Known& k) {
    switch (below(9)) {
      case 0:
      case 1:
      case 2: return T({Value(8), args({target(k), name(), call_args(k), kwargs(k)}, below(6) == 0)});
      case 3: return T({Value(7), args({method(k), call_args(k), kwargs(k)}, below(6) == 0)});
      case 4: return T({Value(4), args({target(k), name()}, below(8) == 0)});
      case 5: return T({Value(15), args({method(k), count()}, below(5) == 0)});
      case 6: return T({Value(1), args({any_boxed(k, 0)}, below(8) == 0)});
      case 7: return T({Value(16), args({boxed(k.root)}, below(4) == 0)});
      default: return T({Value(static_cast<std::int64_t>(below(24))), any_boxed(k, 0)});
    }
  }

  /// A reply body: a boxed value of any kind, references included.
  Value reply(const Known& k) { return any_boxed(k, 0); }

  std::size_t below(std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_); }
  std::mt19937_64& rng() { return rng_; }

 private:
  Value args(std::vector<Value> items, bool drop_or_add) {
    if (drop_or_add) {
      if (below(2) && !items.empty()) {
        items.pop_back();
      } else {
        items.push_back(boxed(Value(7)));
      }
    }
    if (below(10) == 0) return boxed(Value::tuple(std::vector<Value>()));  // args as a VALUE
    return T({Value(2), Value::tuple(std::move(items))});
  }

  Value id_pack_variant(const Value& good) {
    const auto& t = good.as_tuple();
    switch (below(10)) {
      case 0: return T({t[0], t[1], Value(424242)});        // unknown instance
      case 1: return T({t[0], Value(12345), t[2]});         // wrong class id
      case 2: return T({Value("other.Name"), t[1], t[2]});  // wrong name
      case 3: return T({t[0], t[1]});                       // short
      case 4: return T({t[0], t[1], Value(-1)});            // negative instance
      case 5: return Value("not an id_pack");
      default: return good;
    }
  }

  Value target(const Known& k) {
    switch (below(8)) {
      case 0: return T({Value(3), id_pack_variant(k.root)});
      case 1: return remote_ref();
      case 2: return boxed(Value());
      case 3: return T({Value(9), k.root});
      default: return T({Value(3), k.root});
    }
  }

  Value method(const Known& k) {
    if (below(6) == 0) return T({Value(3), id_pack_variant(k.method)});
    if (below(10) == 0) return T({Value(3), k.root});  // not callable
    return T({Value(3), k.method});
  }

  Value name() {
    static const char* kNames[] = {"add",    "echo", "exposed_add", "fail",
                                   "answer", "nope", "_private",    "__len__"};
    switch (below(12)) {
      case 0: return boxed(Value::bytes("add"));
      case 1: return boxed(Value(5));
      case 2: return T({Value(2), T({boxed(Value("add"))})});
      default: return boxed(Value(kNames[below(8)]));
    }
  }

  Value remote_ref() {
    return T(
        {Value(4), T({Value("client.Thing"), Value(777), Value(static_cast<std::int64_t>(below(5)) + 1)})});
  }

  Value call_args(const Known& k) {
    switch (below(8)) {
      case 0: return boxed(T({Value(1), Value(2)}));  // a plain tuple as one VALUE
      case 1: return boxed(Value());                  // None: no arguments
      case 2: return boxed(Value(5));                 // not a tuple
      case 3: return T({Value(2), T({remote_ref(), boxed(Value(2))})});
      case 4: return T({Value(2), T({any_boxed(k, 1), any_boxed(k, 1)})});
      default: return T({Value(2), T({boxed(Value(1)), boxed(Value(2))})});
    }
  }

  Value kwargs(const Known& k) {
    switch (below(8)) {
      case 0: return T({Value(2), T({T({Value(2), T({boxed(Value("b")), boxed(Value(5))})})})});
      case 1: return boxed(T({T({Value("b"), Value(9)})}));
      case 2: return boxed(Value());
      case 3: return T({Value(2), T({T({Value(2), T({boxed(Value(1)), any_boxed(k, 2)})})})});
      default: return boxed(T({}));
    }
  }

  Value count() {
    switch (below(6)) {
      case 0: return boxed(Value(0));
      case 1: return boxed(Value(-3));
      case 2: return boxed(Value("x"));
      case 3: return T({Value(2), T({})});
      default: return boxed(Value(1));
    }
  }

  Value any_boxed(const Known& k, int depth) {
    switch (depth > 2 ? 0 : below(9)) {
      case 0:
      case 1:
      case 2: return boxed(values_.any());
      case 3: return T({Value(3), below(3) ? k.root : k.method});
      case 4: return remote_ref();
      case 5: {
        std::vector<Value> items;
        for (std::size_t i = below(4); i > 0; --i) items.push_back(any_boxed(k, depth + 1));
        return T({Value(2), Value::tuple(std::move(items))});
      }
      case 6: return T({Value(static_cast<std::int64_t>(below(7))), values_.scalar()});
      case 7: return T({Value(3), id_pack_variant(k.root)});
      default: return Value::tuple({Value(1)});  // a 1-tuple is no boxed value
    }
  }

  std::mt19937_64 rng_;
  brine::testing::RandomValues values_;
};

/// The bytes to send: mostly as built, sometimes damaged.
std::string damage(Corpus& c, std::string bytes) {
  switch (c.below(10)) {
    case 0: return bytes.substr(0, c.below(bytes.size()) + 1);
    case 1: {
      for (int i = 0; i < 2; ++i) bytes[c.below(bytes.size())] = static_cast<char>(c.rng()());
      return bytes;
    }
    case 2: return bytes + std::string(1, static_cast<char>(c.below(256)));
    default: return bytes;
  }
}

/// The connection's state after the exchange, into the outcome.
void note_state(const Peer& p, Outcome& o) {
  o.fast = rpc::detail::ConnectionAccess::core(*p.conn).decoder().fast_decoded();
  o.closed = p.conn->closed();
  o.error = error_text(p.conn->error());
  const ConnectionStats s = p.conn->stats();
  o.exported = s.exported;
  o.proxies = s.proxies;
}

// ------------------------------------------------------------------------------- requests

Task<Outcome> serve_one(Peer& p, std::string message) {
  Outcome o;
  Known k = co_await handshake(p);
  (void)k;
  p.raw->send(OutFrame::copied(message));
  // A PING after it: its reply marks the end of everything the message caused.
  p.raw->send(
      OutFrame::copied(envelope(p.gen, 1, 900, T({Value(1), T({Value(2), T({boxed(Value("end"))})})}))));
  co_await collect_until(p, 900, o.frames);
  note_state(p, o);
  co_return o;
}

Task<Known> known_of(Peer& p) {
  Known k = co_await handshake(p);
  co_return k;
}

class DecodeTest : public LoopTest, public ::testing::WithParamInterface<Generation> {};

TEST_P(DecodeTest, RequestsAnsweredAsByTheGeneralPath) {
  const Generation gen = GetParam();
  Known k;
  {
    Peer probe = make_peer(loop_, true, gen, std::make_shared<TestRoot>());
    k = run(known_of(probe));
  }
  Corpus corpus(gen == Generation::k5 ? 515 : 616);
  int fast_answers = 0;
  int fast_taken = 0;  // messages under test the fast decoder took (beyond the 3 of the exchange)
  for (int i = 0; i < 1500; ++i) {
    const std::string plain = envelope(gen, 1, 100, corpus.request(k));
    const std::string message = damage(corpus, plain);
    Peer fast = make_peer(loop_, true, gen, std::make_shared<TestRoot>());
    Peer slow = make_peer(loop_, false, gen, std::make_shared<TestRoot>());
    Outcome a = run(serve_one(fast, message));
    Outcome b = run(serve_one(slow, message));
    ASSERT_EQ(a, b) << "message #" << i << ": "
                    << brine::load(std::string_view(plain).substr(gen == Generation::k6)).repr(400);
    if (!a.closed && a.frames.size() >= 2 && a.frames[a.frames.size() - 2].starts_with("2 100"))
      ++fast_answers;
    EXPECT_EQ(b.fast, 0u);
    if (a.fast > 3) ++fast_taken;  // GETROOT, GETATTR and the closing PING are 3
  }
  EXPECT_GT(fast_answers, 300);  // plenty of the corpus is valid and answered normally
  EXPECT_GT(fast_taken, 500);    // and the fast path really took a good part of it
}

// ------------------------------------------------------------------------------- replies

/// The connection asks PING(fn) of the raw peer, which answers with a reply from the corpus
/// (possibly damaged, of an unknown seq, or an exception), then answers a second PING as a
/// marker if the connection is still up.
Task<Outcome> receive_one(Peer& p, Corpus& corpus, const Known& peer_known) {
  Outcome o;
  ObjectPtr fn = make_function("cb", [](std::vector<Any>, Kwargs) { return Any(); });
  AsyncResult r = p.conn->async_request(rpc::Handler::kPing, make_args(fn));
  // The request exported fn: its id_pack is what a LOCAL_REF in the reply may name.
  Bytes req = co_await p.raw->recv();
  Parsed m = parse(p.gen, req);
  Known k = peer_known;
  k.root =
      m.body.as_tuple()[1].as_tuple()[1].as_tuple()[0].as_tuple()[1];  // (PING, (TUPLE, ((REMOTE_REF, id),)))
  std::string reply = damage(corpus, envelope(p.gen, corpus.below(8) == 0 ? 3 : 2, m.seq, corpus.reply(k)));
  if (corpus.below(10) == 0) reply = envelope(p.gen, 2, m.seq + 50, corpus.reply(k));  // unknown seq
  p.raw->send(OutFrame::copied(reply));
  AsyncResult marker;
  bool sent = false;
  try {
    marker = p.conn->async_request(rpc::Handler::kPing, make_args(Value("end")));
    sent = true;
  } catch (const std::exception&) {
  }
  if (sent) {
    Bytes mreq;
    bool eof = false;
    try {
      mreq = co_await p.raw->recv();
    } catch (const std::exception&) {
      eof = true;
    }
    if (!eof) {
      Parsed mm = parse(p.gen, mreq);
      if (mm.msg == 1 && !p.conn->closed()) {
        p.raw->send(OutFrame::copied(envelope(p.gen, 2, mm.seq, boxed(Value("end")))));
        try {
          Any ignored = co_await marker;
        } catch (const std::exception&) {
        }
      } else {
        o.frames.push_back(fmt::format("{} {} {}", mm.msg, mm.seq, normalized(mm.body.repr())));
      }
    }
  }
  if (r.ready()) {
    try {
      o.result = normalized(r.value().repr());
    } catch (const std::exception& e) {
      o.result = std::string("error: ") + normalized(e.what());
    }
  } else {
    o.result = "pending";
  }
  note_state(p, o);
  co_return o;
}

TEST_P(DecodeTest, RepliesTakenAsByTheGeneralPath) {
  const Generation gen = GetParam();
  Known k;
  k.method = T({Value("client.Other"), Value(1), Value(99)});
  int values = 0;
  int fast_taken = 0;
  for (int i = 0; i < 1500; ++i) {
    // The same draws for both connections: two corpora from one seed.
    Corpus a_corpus(9000 + i);
    Corpus b_corpus(9000 + i);
    Peer fast = make_peer(loop_, true, gen, nullptr);
    Peer slow = make_peer(loop_, false, gen, nullptr);
    Outcome a = run(receive_one(fast, a_corpus, k));
    Outcome b = run(receive_one(slow, b_corpus, k));
    ASSERT_EQ(a, b) << "reply #" << i;
    if (!a.result.starts_with("error") && a.result != "pending") ++values;
    EXPECT_EQ(b.fast, 0u);
    if (a.fast > 1) ++fast_taken;  // beyond the marker's reply
  }
  EXPECT_GT(values, 300);
  EXPECT_GT(fast_taken, 300);
}

INSTANTIATE_TEST_SUITE_P(Generations, DecodeTest, ::testing::Values(Generation::k5, Generation::k6),
                         [](const auto& info) { return info.param == Generation::k5 ? "v5" : "v6"; });

}  // namespace
}  // namespace tether::testing
