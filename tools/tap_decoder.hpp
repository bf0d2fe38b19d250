#pragma once
/// \file TapDecoder: turns one direction of an RPyC byte stream into readable lines, for
/// `tether tap`. It only looks at copies of the bytes; the relay forwards them unchanged.
///
/// Each whole frame becomes one line: connection and direction, time since the connection
/// opened, generation, seq, message type, handler name, the decoded body as a Python-like repr
/// cut to a width (boxed references shown as <ref TYPE #INSTANCE> / <your-ref ...>), the frame's
/// wire size (and the inflated size of compressed frames) and, for replies, the time since the
/// request with the same seq went the other way. Bytes that are not RPyC frames or messages
/// give a line starting with "!!" and the decoder stops decoding that direction (the relay
/// then forwards or cuts, as --strict says).
///
/// Not thread-safe; one per direction of a connection, on its loop thread.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tether/base/buffer.hpp"
#include "tether/brine/value.hpp"
#include "tether/channel/frame.hpp"

namespace tether::tools {

/// Request times shared by both directions of one connection (for reply latencies).
struct TapTimes {
  std::chrono::steady_clock::time_point opened = std::chrono::steady_clock::now();
  /// (direction that sent the request, seq) -> when.
  std::map<std::pair<int, std::uint64_t>, std::chrono::steady_clock::time_point> requests;
};

class TapDecoder {
 public:
  /// `direction`: 0 client to server ("c>s"), 1 server to client ("s>c").
  TapDecoder(int connection, int direction, std::size_t width, std::shared_ptr<TapTimes> times);

  /// Decodes what `data` completes; returns the lines to print (without newlines).
  std::vector<std::string> feed(std::string_view data);
  /// True once bad input was seen (decoding has stopped).
  [[nodiscard]] bool broken() const noexcept { return broken_; }
  /// True once anything undecodable was seen (a bad frame, or a frame that is no message).
  [[nodiscard]] bool bad() const noexcept { return bad_; }
  /// Lines for the end of the stream (a partial frame left over is reported).
  std::vector<std::string> finish();

  /// The message part of a line for one payload (exposed for tests): "5.x seq=0 REQUEST ..."
  /// or throws ProtocolError for a payload that is not an RPyC message.
  [[nodiscard]] std::string describe_payload(std::span<const std::uint8_t> payload, std::string& latency);

 private:
  std::string prefix() const;

  int connection_;
  int direction_;
  std::size_t width_;
  std::shared_ptr<TapTimes> times_;
  Buffer buffer_;
  FrameDecoder frames_;
  bool broken_ = false;
  bool bad_ = false;
};

/// A boxed RPyC value (label, value) as Python-like text; references as <ref TYPE #ID>.
[[nodiscard]] std::string boxed_repr(const brine::Value& boxed, int depth = 0);

}  // namespace tether::tools
