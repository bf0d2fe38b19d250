#pragma once
// Private: encoding of outgoing messages (wire spec §4–§5) straight into a reused buffer — the
// envelope and RPyC's boxing written as brine tuple headers and leaves, with no intermediate
// Value tree (tests/rpc/encode_test.cpp checks the bytes against dump() of that tree) — and
// handing them to the Channel.

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "rpc/export_table.hpp"
#include "tether/base/buffer.hpp"
#include "tether/base/bytes.hpp"
#include "tether/brine/value.hpp"
#include "tether/channel/channel.hpp"
#include "tether/rpc/any.hpp"
#include "tether/rpc/protocol.hpp"

namespace tether {
class ClassSet;
}  // namespace tether

namespace tether::rpc::detail {

class ConnectionCore;

/// Loop thread only. begin() ... finish() never suspends, so one buffer serves the
/// connection; a message whose encoding throws is abandoned by the next begin().
class MessageWriter {
 public:
  /// What to send for a Netref of another connection (a forwarding object to lend), or throw.
  using ForeignNetref = std::function<ObjectPtr(const Netref&)>;

  MessageWriter(Channel& channel, ExportTable& exports, const ConnectionCore* owner);
  MessageWriter(const MessageWriter&) = delete;
  MessageWriter& operator=(const MessageWriter&) = delete;

  void set_generation(Generation g) noexcept { gen_ = g; }
  [[nodiscard]] Generation generation() const noexcept { return gen_; }
  void set_foreign_netref(ForeignNetref fn) { foreign_ = std::move(fn); }
  /// The classes objects made by to_any(std::shared_ptr<T>) are bound to when sent (class.hpp).
  void set_classes(const ClassSet* classes) noexcept { classes_ = classes; }

  /// The envelope up to the body: (msg, seq, ...) for 5.x, msg byte + (seq, ...) for 6.x.
  Buffer& begin(MsgType type, std::uint64_t seq);
  /// A request's envelope and handler: the caller appends the boxed argument tuple.
  Buffer& begin_request(Handler h, std::uint64_t seq);
  /// Frames and queues the message begun last. A small message is copied into the stream's
  /// tail chunk (no allocation), a large one hands its storage over (no copy).
  void finish();
  /// A whole message with a Value body.
  void send(MsgType type, std::uint64_t seq, const brine::Value& body);

  // --- boxing (§5)
  /// Appends RPyC's boxed form of `a`, lending objects of ours.
  void boxed(const Any& a, Buffer& out);
  void boxed_tuple(const std::vector<Any>& items, Buffer& out);
  /// The same for items the caller gives up: a tuple of plain values travels as one VALUE,
  /// and the first large bytes value among them goes out uncopied (splice).
  void boxed_tuple_owned(std::vector<Any>& items, Buffer& out);
  /// (VALUE, (v, ...)) of plain values, the first large bytes one uncopied.
  void value_tuple(std::span<brine::Value> values, Buffer& out);
  void netref(const Netref& ref, Buffer& out);
  /// A result: spliced when it is a large bytes value, else boxed.
  void boxed_owned(Any& a, Buffer& out);

  /// Bytes of large bytes values sent without being copied into their message.
  [[nodiscard]] std::uint64_t uncopied_bytes() const noexcept { return uncopied_; }

 private:
  bool splice_bytes(brine::Value& v, Buffer& out, bool boxed);

  Channel& channel_;
  ExportTable& exports_;
  const ConnectionCore* owner_;
  Generation gen_ = Generation::k5;
  ForeignNetref foreign_;
  const ClassSet* classes_ = nullptr;
  const bool splice_ok_;  // the channel does not compress (its options are fixed at construction)
  Buffer scratch_;
  Bytes block_;  // a spliced bytes value, sent after scratch_'s first block_at_ bytes
  std::size_t block_at_ = 0;
  bool has_block_ = false;
  std::uint64_t uncopied_ = 0;
};

/// RPyC's kwargs tuple: ((name, value), ...).
Any kwargs_tuple(Kwargs kwargs);

}  // namespace tether::rpc::detail
