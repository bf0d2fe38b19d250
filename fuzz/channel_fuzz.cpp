// Channel (channel/channel.hpp) over an in-memory pipe under fuzzed chunking: the input, after
// the frame options, a chunk plan and a receive plan, is the byte stream the peer sends. The
// channel takes it with recv() or peek() + consume() (+ wait() when nothing is buffered; the
// frame peeked once, or twice before it is consumed), chosen per frame; the non-empty payloads, then the
// terminal error (Disconnected at EOF, ProtocolError on a bad frame), must be those of the reference decode
// (frame_reference.hpp), with matching stats. Every payload received is sent back (an
// OutFrame copied, of a Buffer or spliced, compressed above the fuzzed threshold) and what
// reaches the other end must decode to the same payloads.

#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "frame_reference.hpp"
#include "fuzz_util.hpp"
#include "pipe_driver.hpp"
#include "tether/base/buffer.hpp"
#include "tether/base/bytes.hpp"
#include "tether/base/error.hpp"
#include "tether/base/log.hpp"
#include "tether/channel/channel.hpp"
#include "tether/loop/task.hpp"
#include "tether/stream/buffered_stream.hpp"

namespace tf = tether::fuzz;

namespace {

struct Step {
  enum Kind { kNone, kPayload, kDisconnected, kProtocol, kClosed } kind = kNone;
  std::string payload;
};

/// The Step that ends the stream for the exception in flight: ProtocolError, Disconnected or
/// StreamClosed; anything else propagates (and fails the run).
Step::Kind end_kind(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const tether::ProtocolError&) {
    return Step::kProtocol;
  } catch (const tether::Disconnected&) {
    return Step::kDisconnected;
  } catch (const tether::StreamClosed&) {
    return Step::kClosed;
  }
}

tether::Task<void> recv_one(tether::Channel& ch, Step& out) {
  try {
    tether::Bytes p = co_await ch.recv();
    out.kind = Step::kPayload;
    out.payload = p.str();
  } catch (...) {
    out.kind = end_kind(std::current_exception());
  }
}

tether::Task<void> wait_one(tether::Channel& ch, Step& out) {
  try {
    co_await ch.wait();
  } catch (...) {
    out.kind = end_kind(std::current_exception());
  }
}

/// Moves what the channel wrote into `sent` (the other end of the pipe), turning the loop
/// while the stream still has queued bytes (a frame larger than the pipe's capacity).
void collect(tether::Channel& ch, tether::MemPipeEnd& end, tether::Buffer& sent) {
  for (int turns = 0;; ++turns) {
    const std::size_t n = end.available();
    if (n != 0) {
      const std::size_t got = end.try_read(sent, n);
      FUZZ_CHECK(got == n);
    }
    if (ch.stream().write_buffer_size() == 0) break;
    FUZZ_CHECK(turns < 100000);
    tf::fuzz_loop().run_once(tether::Duration::zero());
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  tether::set_log_level(tether::LogLevel::kError);  // the non-strict trailer warning
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  tf::Input in(data, size);
  const tether::ChannelOptions opts = tf::options_from(in, std::size_t{256} << 10);
  const std::uint8_t plan = in.u8();
  const std::uint16_t modes = in.u16();
  const std::string_view wire = in.rest();
  const tf::RefDecode ref = tf::ref_decode(wire, opts);
  std::vector<std::string> want;
  std::size_t want_bytes = 0;
  std::size_t want_empty = 0;
  for (const std::string& p : ref.payloads) {
    want_bytes += p.size();
    if (p.empty()) {
      ++want_empty;
    } else {
      want.push_back(p);
    }
  }

  std::vector<std::string> echoed;
  tether::Buffer sent;
  {
    tf::PipeDriver driver(wire, plan);
    tether::StreamOptions so;
    so.read_chunk_size = 4096;
    tether::Channel ch(std::make_unique<tether::BufferedStream>(driver.take_reader(), so), opts);
    std::size_t got = 0;
    for (std::size_t step_no = 0;; ++step_no) {
      const int mode = (modes >> (2 * (step_no % 8))) & 3;
      Step st;
      if (mode == 0) {
        tether::Task<void> t = recv_one(ch, st);
        driver.run(t);
      } else {
        for (;;) {
          try {
            std::optional<std::span<const std::uint8_t>> p = ch.peek();
            if (p) {
              st.kind = Step::kPayload;
              st.payload.assign(reinterpret_cast<const char*>(p->data()), p->size());
              if (mode != 1) {
                std::optional<std::span<const std::uint8_t>> again = ch.peek();
                FUZZ_CHECK(again && again->data() == p->data() && again->size() == p->size());
              }
              ch.consume();
            }
          } catch (...) {
            st.kind = end_kind(std::current_exception());
          }
          if (st.kind != Step::kNone) break;
          tether::Task<void> t = wait_one(ch, st);
          driver.run(t);
          if (st.kind != Step::kNone) break;
        }
      }
      if (st.kind != Step::kPayload) {
        // The end: Disconnected at EOF (clean or truncated), ProtocolError on a bad frame.
        if (got != want.size() ||
            st.kind != (ref.end == tf::RefEnd::kProtocol ? Step::kProtocol : Step::kDisconnected)) {
          std::fprintf(stderr, "end after %zu of %zu payloads: kind %d, reference end %d\n", got, want.size(),
                       static_cast<int>(st.kind), static_cast<int>(ref.end));
        }
        FUZZ_CHECK(got == want.size());
        FUZZ_CHECK(st.kind == (ref.end == tf::RefEnd::kProtocol ? Step::kProtocol : Step::kDisconnected));
        FUZZ_CHECK(ch.closed() == (st.kind == Step::kProtocol));
        FUZZ_CHECK(ch.closed() == !ch.error().empty());
        break;
      }
      FUZZ_CHECK(got < want.size());
      FUZZ_CHECK(st.payload == want[got]);
      ++got;
      // Echo it (the three kinds of OutFrame in turn), written out at once (the release of
      // the only flush hold) so nothing is lost if a later frame closes the channel.
      tether::Channel::FlushHold hold(ch);
      if (got % 3 == 0) {
        ch.send(tether::OutFrame::copied(st.payload));
      } else if (got % 3 == 1) {
        tether::Buffer b;
        b.append(st.payload);
        ch.send(tether::OutFrame(std::move(b)));
      } else {
        // The middle third as a spliced block, the rest around it in the head.
        const std::size_t at = st.payload.size() / 3;
        const std::size_t len = st.payload.size() / 3;
        tether::Buffer head;
        head.append(std::string_view(st.payload).substr(0, at));
        head.append(std::string_view(st.payload).substr(at + len));
        ch.send(tether::OutFrame::spliced(std::move(head), at, tether::Bytes(st.payload.substr(at, len))));
      }
      echoed.push_back(st.payload);
      hold.release();
      collect(ch, driver.writer(), sent);
    }
    const tether::ChannelStats stats = ch.stats();
    FUZZ_CHECK(stats.frames_in == ref.payloads.size());
    FUZZ_CHECK(stats.empty_frames_in == want_empty);
    FUZZ_CHECK(stats.payload_bytes_in == want_bytes);
    FUZZ_CHECK(stats.wire_bytes_in == ref.consumed);
    FUZZ_CHECK(stats.frames_out == echoed.size());
    ch.stream().abort();
  }
  tf::PipeDriver::settle();
  const tether::LoopStats st = tf::fuzz_loop().stats();
  FUZZ_CHECK(st.watchers == 0 && st.timers == 0 && st.ready == 0);

  // What was sent back decodes, with generous limits, to the same payloads.
  tether::ChannelOptions back;
  back.max_frame_size = back.max_payload_size = std::size_t{1} << 30;
  const tf::RefDecode echo = tf::ref_decode(sent.view(), back);
  FUZZ_CHECK(echo.end == tf::RefEnd::kClean);
  FUZZ_CHECK(echo.payloads == echoed);
  return 0;
}
