#pragma once
// Private: decoding of incoming messages (wire spec §4–§5). A pure function of the payload and
// the export table: frame bytes in, a Message out, nothing done. The fast path for common
// shapes reads straight into Any with brine::Reader (decode_fast.cpp); anything it does not
// recognise falls back, inside the decoder, to the general path (a Value tree, then unboxed),
// whose errors are the reference. References to the peer's objects (REMOTE_REF) are not
// turned into proxies here: the Message lists them, and whoever acts on it makes the proxies,
// so that a message that is dropped or fails leaves no trace.

#include <array>
#include <cstdint>
#include <exception>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "rpc/export_table.hpp"
#include "tether/brine/codec.hpp"
#include "tether/brine/reader.hpp"
#include "tether/brine/value.hpp"
#include "tether/rpc/any.hpp"
#include "tether/rpc/protocol.hpp"

namespace tether::rpc::detail {

/// A REMOTE_REF read into `slot`; its proxy is made once the message is acted on.
struct DeferredRef {
  Any* slot;
  brine::Value id_pack;
};

/// A request's argument tuple: up to four items in place (no allocation for most requests),
/// more in a vector.
struct RequestArgs {
  std::array<Any, 4> small;
  std::vector<Any> large;
  std::size_t n = 0;
  RequestArgs() = default;
  RequestArgs(const RequestArgs&) = delete;
  RequestArgs& operator=(const RequestArgs&) = delete;
  ~RequestArgs() {
    for (Any& a : small) a = Any();  // first to last, as a vector releases its items
  }
  void resize(std::size_t count);
  [[nodiscard]] std::span<Any> items() noexcept {
    return n <= small.size() ? std::span<Any>(small.data(), n) : std::span<Any>(large);
  }
};

/// CALLATTR, CALL and GETATTR as the fast path reads them when they have the usual shape (the
/// target one of our exports, the name a str): no argument tuple to take apart afterwards.
struct CallShape {
  bool present = false;
  ObjectPtr obj;
  std::string name;  // CALLATTR's and GETATTR's, unchecked (the access check is the dispatcher's)
  std::vector<Any> args;
  Any kwargs;  // None when the peer sent none or an empty tuple
};

/// One decoded message. Not movable once decoded: `refs` point into it.
struct Message {
  MsgType type = MsgType::kRequest;
  std::uint64_t seq = 0;
  /// Requests: the handler number as sent (out of range: answered with KeyError).
  std::int64_t handler = 0;
  RequestArgs args;
  CallShape call;
  /// Requests: arguments refused while decoding (answered with this exception). Replies: the
  /// reply broke the boxing rules (the caller gets this ProtocolError).
  std::exception_ptr error;
  Any value;                      ///< replies
  brine::Value body;              ///< exception replies (vinegar)
  std::vector<DeferredRef> refs;  ///< REMOTE_REFs read, for proxies
  std::size_t cost = 0;           ///< decoded memory (brine::Limits::max_decoded_bytes' count)

  Message() = default;
  Message(const Message&) = delete;
  Message& operator=(const Message&) = delete;
};

/// Loop thread only (it reads the export table, whose recent-reference cache it updates).
class MessageDecoder {
 public:
  MessageDecoder(const ExportTable& exports, const brine::Limits& limits) : exports_(exports), limits_(limits) {}

  /// Decodes a payload of generation `gen` into `out` (fresh). Throws ProtocolError for a
  /// malformed envelope or brine (limits included): the connection's framing is then in doubt.
  void decode(std::span<const std::uint8_t> payload, Generation gen, Message& out);

  /// Tests: off sends every message down the general path (decode_test compares the two).
  void set_fast(bool on) noexcept { fast_on_ = on; }
  /// Messages the fast path took (the rest went down the general path).
  [[nodiscard]] std::uint64_t fast_decoded() const noexcept { return fast_decoded_; }

 private:
  // --- general path (message_reader.cpp)
  void decode_general(std::span<const std::uint8_t> payload, Generation gen, Message& out);
  /// Unboxes into `slot`, where it stays: a REMOTE_REF is listed in `refs` with its slot.
  void unbox_into(brine::Value boxed, Any& slot, std::vector<DeferredRef>& refs);
  brine::Value load_counted(std::span<const std::uint8_t> bytes, std::size_t& cost) const;

  // --- fast path (decode_fast.cpp): false, having changed nothing in `out` that the general
  // path relies on, for anything it does not handle.
  enum class Decoded { kFail, kPlain, kRef };
  bool decode_fast(std::span<const std::uint8_t> payload, Generation gen, Message& out);
  Decoded boxed(brine::Reader& r, std::size_t depth, Any& out, std::vector<DeferredRef>& refs);
  bool boxed_items(brine::Reader& r, std::size_t depth, std::vector<Any>& out, std::vector<DeferredRef>& refs,
                   bool none_is_empty);
  bool request_args(brine::Reader& r, Handler h, RequestArgs& args, std::vector<DeferredRef>& refs);
  bool call_shape(brine::Reader& r, Handler h, CallShape& call, std::vector<DeferredRef>& refs);

  const ExportTable& exports_;
  const brine::Limits& limits_;
  bool fast_on_ = true;
  std::uint64_t fast_decoded_ = 0;
};

}  // namespace tether::rpc::detail
