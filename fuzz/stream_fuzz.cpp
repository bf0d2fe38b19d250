// BufferedStream's reads (stream/buffered_stream.hpp) under fuzzed chunking: the input holds a
// stream limit, up to 8 read operations (read, read_exactly, read_until with a fuzzed delimiter
// and with "\n" as readline does, read_until_regex with a fuzzed pattern, read_until_close, the
// streaming read_exactly) and a chunk plan; the rest is the byte stream, written through an
// in-memory pipe chunk by chunk whenever the reader starves (pipe_driver.hpp).
//
// Each read's outcome is checked against a reference that rescans the whole unread input at
// every arrival, as the documented semantics say (docs/streams.md): the returned bytes, the
// IncompleteRead partial/expected, LimitOverrun's consumed (exact for read_until, bounded for
// the regex), LimitExceeded, UsageError; after each read the stream's buffer must hold exactly
// the unread bytes that arrived. The stream and loop must end with nothing left alive.

#include <re2/re2.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_util.hpp"
#include "pipe_driver.hpp"
#include "tether/base/bytes.hpp"
#include "tether/base/error.hpp"
#include "tether/base/function.hpp"
#include "tether/loop/task.hpp"
#include "tether/stream/buffered_stream.hpp"
#include "tether/stream/mem_pipe.hpp"

namespace tf = tether::fuzz;

namespace {

enum class OpKind { kRead, kReadExactly, kReadUntil, kReadLine, kReadRegex, kReadUntilClose, kStreamExactly };
constexpr int kOpKinds = 7;

struct Op {
  OpKind kind = OpKind::kRead;
  std::size_t n = 0;  // read/read_exactly size, or max_bytes
  std::string arg;    // delimiter or pattern
};

struct Outcome {
  enum Kind { kValue, kIncomplete, kOverrun, kLimitExceeded, kUsage } kind = kValue;
  std::string bytes;            // the value, or IncompleteRead's partial
  std::size_t number = 0;       // IncompleteRead's expected, LimitOverrun's consumed
  std::size_t overrun_max = 0;  // regex: consumed may be anything up to this
  bool regex_overrun = false;
};

bool operator==(const Outcome& a, const Outcome& b) {
  if (a.kind != b.kind || a.bytes != b.bytes) return false;
  if (a.kind == Outcome::kOverrun && (a.regex_overrun || b.regex_overrun)) return true;  // checked apart
  return a.number == b.number;
}

re2::RE2::Options regex_options() {
  re2::RE2::Options o;  // as the stream's (stream_regex.cpp)
  o.set_encoding(re2::RE2::Options::EncodingLatin1);
  o.set_log_errors(false);
  o.set_max_mem(8 << 20);
  return o;
}

/// What the reader has seen: the unread bytes w[cur, arrived) are in the stream's buffer; the
/// pipe holds w[arrived, delivered); later chunks end at ends[next..].
struct Model {
  std::string_view w;
  const std::vector<std::size_t>* ends;
  std::size_t cur = 0;
  std::size_t arrived = 0;
  std::size_t delivered = 0;
  std::size_t next = 0;
  bool eof_sent = false;
  bool eof = false;  // the stream has read EOF

  [[nodiscard]] std::string_view buffered() const { return w.substr(cur, arrived - cur); }
  /// The next arrival as the stream reads it: what waits in the pipe, else the next chunk; false
  /// at EOF.
  bool next_arrival() {
    if (eof) return false;
    if (arrived < delivered) {
      arrived = delivered;
      return true;
    }
    if (next < ends->size()) {
      arrived = delivered = (*ends)[next++];
      return true;
    }
    eof_sent = true;
    eof = true;
    return false;
  }
  void take(std::size_t n) { cur += n; }
};

/// The reference: evaluates the op at each arrival on the whole unread input.
Outcome expect(const Op& op, Model& m, std::size_t max_buffer) {
  Outcome o;
  const std::size_t limit = op.n ? op.n : max_buffer;
  std::optional<re2::RE2> re;
  if (op.kind == OpKind::kReadRegex) {
    re.emplace(op.arg, regex_options());
    if (!re->ok()) return {Outcome::kUsage, {}, 0, 0, false};
  }
  if (op.kind == OpKind::kReadUntil && op.arg.empty()) return {Outcome::kUsage, {}, 0, 0, false};
  if (op.kind == OpKind::kReadExactly && op.n > max_buffer) return {Outcome::kLimitExceeded, {}, 0, 0, false};
  if (op.kind == OpKind::kRead && op.n == 0) return {Outcome::kValue, {}, 0, 0, false};
  for (bool first = true;; first = false) {
    const std::string_view v = m.buffered();
    switch (op.kind) {
      case OpKind::kRead:
        if (!v.empty()) {
          const std::size_t k = std::min(op.n, v.size());
          m.take(k);
          return {Outcome::kValue, std::string(v.substr(0, k)), 0, 0, false};
        }
        break;
      case OpKind::kReadExactly:
      case OpKind::kStreamExactly:
        if (v.size() >= op.n) {
          m.take(op.n);
          // The streaming form asks the transport for no more than it still needs, so after
          // a read it leaves the rest of the last chunk in the pipe.
          if (op.kind == OpKind::kStreamExactly && !first) m.arrived = m.cur;
          return {Outcome::kValue, std::string(v.substr(0, op.n)), 0, 0, false};
        }
        break;
      case OpKind::kReadUntil:
      case OpKind::kReadLine: {
        const std::string d = op.kind == OpKind::kReadLine ? std::string("\n") : op.arg;
        const std::size_t pos = v.find(d);
        if (pos != std::string_view::npos) {
          if (pos + d.size() <= limit) {
            m.take(pos + d.size());
            return {Outcome::kValue, std::string(v.substr(0, pos + d.size())), 0, 0, false};
          }
          return {Outcome::kOverrun, {}, pos, 0, false};
        }
        if (v.size() >= limit)
          return {Outcome::kOverrun, {}, v.size() >= d.size() ? v.size() - d.size() + 1 : 0, 0, false};
        break;
      }
      case OpKind::kReadRegex: {
        const std::string_view text = v.substr(0, std::min(v.size(), limit));
        re2::StringPiece match;
        if (re->Match(re2::StringPiece(text.data(), text.size()), 0, text.size(), re2::RE2::UNANCHORED,
                      &match, 1)) {
          const std::size_t end = static_cast<std::size_t>(match.data() - text.data()) + match.size();
          m.take(end);
          return {Outcome::kValue, std::string(v.substr(0, end)), 0, 0, false};
        }
        if (v.size() >= limit) return {Outcome::kOverrun, {}, 0, text.size(), true};
        break;
      }
      case OpKind::kReadUntilClose:
        if (v.size() > max_buffer) return {Outcome::kLimitExceeded, {}, 0, 0, false};
        break;
    }
    if (!m.next_arrival()) break;
  }
  // EOF.
  const std::string rest(m.buffered());
  switch (op.kind) {
    case OpKind::kRead: return {Outcome::kValue, {}, 0, 0, false};
    case OpKind::kReadUntilClose: m.take(rest.size()); return {Outcome::kValue, rest, 0, 0, false};
    case OpKind::kStreamExactly:
      m.take(rest.size());
      return {Outcome::kIncomplete, rest, op.n, 0, false};  // bytes: what was delivered
    case OpKind::kReadExactly: m.take(rest.size()); return {Outcome::kIncomplete, rest, op.n, 0, false};
    default: m.take(rest.size()); return {Outcome::kIncomplete, rest, 0, 0, false};
  }
}

tether::Task<void> run_op(tether::BufferedStream& s, const Op& op, Outcome& out) {
  try {
    switch (op.kind) {
      case OpKind::kRead: {
        tether::Bytes b = co_await s.read(op.n);
        out.bytes = b.str();
        break;
      }
      case OpKind::kReadExactly: {
        tether::Bytes b = co_await s.read_exactly(op.n);
        out.bytes = b.str();
        break;
      }
      case OpKind::kReadUntil: {
        tether::Bytes b = co_await s.read_until(op.arg, op.n);
        out.bytes = b.str();
        break;
      }
      case OpKind::kReadLine: {
        tether::Bytes b = co_await s.read_until("\n", op.n);
        out.bytes = b.str();
        break;
      }
      case OpKind::kReadRegex: {
        tether::Bytes b = co_await s.read_until_regex(op.arg, op.n);
        out.bytes = b.str();
        break;
      }
      case OpKind::kReadUntilClose: {
        tether::Bytes b = co_await s.read_until_close();
        out.bytes = b.str();
        break;
      }
      case OpKind::kStreamExactly: {
        std::string* sink = &out.bytes;
        tether::UniqueFunction<void(tether::Bytes)> on_chunk = [sink](tether::Bytes chunk) {
          FUZZ_CHECK(!chunk.empty());
          sink->append(chunk.view());
        };
        co_await s.read_exactly(op.n, std::move(on_chunk));  // lambda built outside co_await (GCC 12)
        break;
      }
    }
    out.kind = Outcome::kValue;
  } catch (const tether::IncompleteRead& e) {
    out.kind = Outcome::kIncomplete;
    out.bytes += e.partial().view();  // streaming: partial is empty, delivered bytes are there
    out.number = e.expected();
  } catch (const tether::LimitOverrun& e) {
    out.kind = Outcome::kOverrun;
    out.number = e.consumed();
  } catch (const tether::LimitExceeded&) {
    out.kind = Outcome::kLimitExceeded;
  } catch (const tether::UsageError&) {
    out.kind = Outcome::kUsage;
  }
}

std::vector<Op> ops_from(tf::Input& in) {
  std::vector<Op> ops;
  const std::size_t count = in.u8() % 8 + 1;
  for (std::size_t i = 0; i < count; ++i) {
    Op op;
    op.kind = static_cast<OpKind>(in.u8() % kOpKinds);
    switch (op.kind) {
      case OpKind::kRead:
      case OpKind::kReadExactly:
      case OpKind::kStreamExactly:
      case OpKind::kReadLine:
      case OpKind::kReadUntilClose: op.n = in.u8(); break;
      case OpKind::kReadUntil:
        op.arg = std::string(in.bytes(in.u8() % 5));
        op.n = in.u8();
        break;
      case OpKind::kReadRegex:
        op.arg = std::string(in.bytes(in.u8() % 9));
        op.n = in.u8();
        break;
    }
    ops.push_back(std::move(op));
  }
  return ops;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  tf::Input in(data, size);
  const std::uint8_t limit_byte = in.u8();
  const std::uint8_t plan = in.u8();
  const std::vector<Op> ops = ops_from(in);
  const std::string_view w = in.rest();

  tether::StreamOptions so;
  so.max_buffer_size = limit_byte == 0 ? so.max_buffer_size : static_cast<std::size_t>(limit_byte) * 2;
  so.read_chunk_size = 4096;  // above any chunk: one read takes a whole chunk
  {
    tf::PipeDriver driver(w, plan);
    tether::MemPipeEnd& reader = driver.reader();
    tether::BufferedStream s(driver.take_reader(), so);
    Model m{w, &driver.ends()};
    for (const Op& op : ops) {
      FUZZ_CHECK(s.buffer().view() == m.buffered());
      const Outcome want = expect(op, m, so.max_buffer_size);
      Outcome got;
      tether::Task<void> t = run_op(s, op, got);
      driver.run(t);
      if (!(got == want)) {
        std::fprintf(
            stderr,
            "op %d n=%zu arg=%zu bytes: got kind %d (%zu bytes, %zu), want kind %d (%zu bytes, %zu)\n",
            static_cast<int>(op.kind), op.n, op.arg.size(), static_cast<int>(got.kind), got.bytes.size(),
            got.number, static_cast<int>(want.kind), want.bytes.size(), want.number);
      }
      FUZZ_CHECK(got == want);
      if (want.regex_overrun) FUZZ_CHECK(got.number <= want.overrun_max);
      // The driver fed exactly the chunks the reference's arrivals used.
      FUZZ_CHECK(driver.chunks_fed() == m.next);
      FUZZ_CHECK(driver.eof_sent() == m.eof_sent);
      FUZZ_CHECK(driver.delivered() - reader.available() == m.arrived);
      FUZZ_CHECK(s.eof_received() == m.eof);
    }
    FUZZ_CHECK(s.buffer().view() == m.buffered());
    s.abort();
  }
  tf::PipeDriver::settle();
  const tether::LoopStats st = tf::fuzz_loop().stats();
  FUZZ_CHECK(st.watchers == 0 && st.timers == 0 && st.ready == 0);
  return 0;
}
