#include "tap_decoder.hpp"

#include <fmt/format.h>

#include "tether/base/error.hpp"
#include "tether/brine/codec.hpp"
#include "tether/rpc/protocol.hpp"

namespace tether::tools {

namespace {

std::string cut(std::string s, std::size_t width) {
  if (width >= 4 && s.size() > width) {
    s.resize(width - 3);
    // Do not leave half a UTF-8 sequence before the dots.
    while (!s.empty() && (static_cast<unsigned char>(s.back()) & 0xC0) == 0x80) s.pop_back();
    if (!s.empty() && (static_cast<unsigned char>(s.back()) & 0xC0) == 0xC0) s.pop_back();
    s += "...";
  }
  return s;
}

/// Control characters (a newline in an exception message) as \xNN: one message, one line.
std::string printable(std::string_view text) {
  std::string out;
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) {
      out += fmt::format("\\x{:02x}", u);
    } else {
      out += c;
    }
  }
  return out;
}

std::string ref_text(const char* what, const brine::Value& id) {
  if (id.is_tuple() && id.as_tuple().size() == 3 && id.as_tuple()[0].is_str()) {
    const auto& t = id.as_tuple();
    const std::string inst =
        t[2].is_int() ? (t[2].is_int64() ? std::to_string(t[2].as_int64()) : t[2].as_big_int().to_string())
                      : t[2].repr();
    return fmt::format("<{} {} #{}>", what, t[0].as_str(), inst);
  }
  return fmt::format("<{} {}>", what, id.repr(80));
}

const char* msg_name(std::int64_t m) {
  switch (m) {
    case 1: return "REQUEST";
    case 2: return "REPLY";
    case 3: return "EXCEPTION";
    default: return nullptr;
  }
}

std::string handler_text(std::int64_t h) {
  if (h >= 1 && h <= 20) return std::string(rpc::handler_name(static_cast<rpc::Handler>(h)));
  return fmt::format("HANDLER_{}", h);
}

std::string exception_text(const brine::Value& body) {
  if (body.is_int64() && body.as_int64() == rpc::kExcStopIteration) return "StopIteration";
  if (body.is_tuple() && body.as_tuple().size() == 4) {
    const auto& t = body.as_tuple();
    std::string name = "?";
    if (t[0].is_tuple() && t[0].as_tuple().size() == 2 && t[0].as_tuple()[0].is_str() &&
        t[0].as_tuple()[1].is_str()) {
      const std::string& mod = t[0].as_tuple()[0].as_str();
      name = (mod == "builtins" ? "" : mod + ".") + t[0].as_tuple()[1].as_str();
    }
    if (t[1].is_tuple() && t[1].as_tuple().size() == 1 && t[1].as_tuple()[0].is_str()) {
      return name + ": " + printable(t[1].as_tuple()[0].as_str());
    }
    return name + t[1].repr();
  }
  return body.repr();
}

}  // namespace

std::string boxed_repr(const brine::Value& boxed, int depth) {
  if (depth > 32 || !boxed.is_tuple() || boxed.as_tuple().size() != 2 || !boxed.as_tuple()[0].is_int64()) {
    return "<unboxed " + boxed.repr(200) + ">";
  }
  const auto& t = boxed.as_tuple();
  switch (t[0].as_int64()) {
    case 1: return t[1].repr();
    case 2: {
      if (!t[1].is_tuple()) return "<bad tuple box " + t[1].repr(80) + ">";
      std::string out = "(";
      const auto& items = t[1].as_tuple();
      for (std::size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + boxed_repr(items[i], depth + 1);
      if (items.size() == 1) out += ",";
      return out + ")";
    }
    case 3: return ref_text("your-ref", t[1]);
    case 4: return ref_text("ref", t[1]);
    default: return fmt::format("<label {} {}>", t[0].as_int64(), t[1].repr(80));
  }
}

TapDecoder::TapDecoder(int connection, int direction, std::size_t width, std::shared_ptr<TapTimes> times)
    : connection_(connection), direction_(direction), width_(width), times_(std::move(times)), frames_([] {
        ChannelOptions o;
        o.strict_framing = true;  // anything but RPyC's exact framing is reported
        return o;
      }()) {}

std::string TapDecoder::prefix() const {
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - times_->opened).count();
  return fmt::format("#{} {} {:9.3f}ms", connection_, direction_ == 0 ? "c>s" : "s>c", ms);
}

std::string TapDecoder::describe_payload(std::span<const std::uint8_t> payload, std::string& latency) {
  if (payload.empty()) throw ProtocolError("empty payload");
  std::int64_t msg = 0;
  brine::Value seq;
  brine::Value body;
  const char* gen = "5.x";
  if (payload[0] == 0x12) {
    brine::Value v = brine::load(payload);
    if (!v.is_tuple() || v.as_tuple().size() != 3)
      throw ProtocolError("5.x envelope is not (msg, seq, body)");
    const auto& t = v.as_tuple();
    if (!t[0].is_int64()) throw ProtocolError("message type is not an int");
    msg = t[0].as_int64();
    seq = t[1];
    body = t[2];
  } else if (payload[0] >= 1 && payload[0] <= 3) {
    gen = "6.x";
    msg = payload[0];
    brine::Value v = brine::load(payload.subspan(1));
    if (!v.is_tuple() || v.as_tuple().size() != 2) throw ProtocolError("6.x envelope is not (seq, body)");
    seq = v.as_tuple()[0];
    body = v.as_tuple()[1];
  } else {
    throw ProtocolError(
        fmt::format("first payload byte 0x{:02x} starts neither a 5.x nor a 6.x message", payload[0]));
  }
  const char* mname = msg_name(msg);
  if (mname == nullptr) throw ProtocolError(fmt::format("invalid message type {}", msg));
  if (!seq.is_int()) throw ProtocolError("seq is not an int");
  const std::uint64_t s = seq.is_int64() ? static_cast<std::uint64_t>(seq.as_int64()) : 0;
  std::string text;
  const auto now = std::chrono::steady_clock::now();
  if (msg == 1) {
    if (!body.is_tuple() || body.as_tuple().size() != 2 || !body.as_tuple()[0].is_int64()) {
      throw ProtocolError("request body is not (handler, args)");
    }
    const std::string h = handler_text(body.as_tuple()[0].as_int64());
    text = h + " " + boxed_repr(body.as_tuple()[1]);
    times_->requests[{direction_, s}] = now;
  } else {
    text = msg == 2 ? boxed_repr(body) : exception_text(body);
    auto it = times_->requests.find({1 - direction_, s});
    if (it != times_->requests.end()) {
      latency = fmt::format("{:.3f} ms", std::chrono::duration<double, std::milli>(now - it->second).count());
      times_->requests.erase(it);
    }
  }
  return fmt::format("{} seq={} {} {}", gen, seq.repr(), mname, text);
}

std::vector<std::string> TapDecoder::feed(std::string_view data) {
  std::vector<std::string> lines;
  if (broken_) return lines;
  buffer_.append(data);
  for (;;) {
    std::optional<FrameView> f;
    try {
      f = frames_.peek(buffer_);
    } catch (const std::exception& e) {
      broken_ = true;
      bad_ = true;
      lines.push_back(fmt::format("{} !! bad frame: {} (no further decoding in this direction)", prefix(),
                                  cut(printable(e.what()), width_)));
      buffer_.retrieve_all();
      return lines;
    }
    if (!f) break;
    std::string latency;
    std::string sizes = f->flag != 0 ? fmt::format("{} B zlib -> {} B", f->wire_size, f->payload.size())
                                     : fmt::format("{} B", f->wire_size);
    try {
      std::string msg = describe_payload(f->payload, latency);
      // Type names and exception names are the peer's raw strings: control characters escaped.
      lines.push_back(fmt::format("{} {}  [{}{}{}]", prefix(), cut(printable(msg), width_), sizes,
                                  latency.empty() ? "" : ", ", latency));
    } catch (const std::exception& e) {
      // A whole frame whose payload is not an RPyC message: shown, and decoding goes on with
      // the next frame (the framing itself is intact).
      bad_ = true;
      lines.push_back(
          fmt::format("{} !! bad message: {}  [{}]", prefix(), cut(printable(e.what()), width_), sizes));
    }
    frames_.consume(buffer_, *f);
  }
  return lines;
}

std::vector<std::string> TapDecoder::finish() {
  std::vector<std::string> lines;
  if (!broken_ && buffer_.readable_bytes() > 0) {
    lines.push_back(fmt::format("{} !! stream ended inside a frame ({} bytes left over)", prefix(),
                                buffer_.readable_bytes()));
  }
  return lines;
}

}  // namespace tether::tools
