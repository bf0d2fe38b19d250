#pragma once
/// \file RPyC protocol constants (docs/wire-protocol.md §3, §5). Numbering is identical in
/// RPyC 5.x and 6.x; only the message envelope differs between generations.

#include <cstdint>
#include <string_view>

namespace tether::rpc {

/// Which envelope a connection speaks. 5.x: brine (msg, seq, body); 6.x: u8 msg + brine (seq, body).
enum class Generation : std::uint8_t { kAuto = 0, k5 = 5, k6 = 6 };

enum class MsgType : std::uint8_t { kRequest = 1, kReply = 2, kException = 3 };

enum class Label : std::uint8_t { kValue = 1, kTuple = 2, kLocalRef = 3, kRemoteRef = 4 };

/// Request handler numbers (§6).
enum class Handler : std::uint8_t {
  kPing = 1,
  kClose = 2,
  kGetRoot = 3,
  kGetAttr = 4,
  kDelAttr = 5,
  kSetAttr = 6,
  kCall = 7,
  kCallAttr = 8,
  kRepr = 9,
  kStr = 10,
  kCmp = 11,
  kHash = 12,
  kDir = 13,
  kPickle = 14,
  kDel = 15,
  kInspect = 16,
  kBuffIter = 17,
  kOldSlicing = 18,
  kCtxExit = 19,
  kInstanceCheck = 20,
};

std::string_view handler_name(Handler h) noexcept;

/// The body of an exception message meaning StopIteration (§9.1).
inline constexpr int kExcStopIteration = 1;

/// What a 5.x / 6.x peer reports as its version in exceptions (§9.3).
inline constexpr std::string_view kVersion5 = "5.3.0";
inline constexpr std::string_view kVersion6 = "6.0.2";

}  // namespace tether::rpc
