#include "rpc/message_writer.hpp"

#include <algorithm>
#include <limits>
#include <utility>

#include "rpc/proxy_table.hpp"
#include "tether/base/endian.hpp"
#include "tether/brine/codec.hpp"
#include "tether/rpc/class.hpp"

namespace tether::rpc::detail {

using brine::Value;

namespace {

// Messages up to this size are copied from the reused encode buffer into the stream.
constexpr std::size_t kCopiedMessage = 4096;
// A bytes value this large is not copied into the message it travels in (splice).
constexpr std::size_t kSpliceMin = 64 * 1024;

void dump_label(Label l, Buffer& out) { brine::dump_int(static_cast<std::int64_t>(l), out); }

}  // namespace

MessageWriter::MessageWriter(Channel& channel, ExportTable& exports, const ConnectionCore* owner)
    : channel_(channel), exports_(exports), owner_(owner), splice_ok_(!channel.options().compress) {}

Buffer& MessageWriter::begin(MsgType type, std::uint64_t seq) {
  Buffer& out = scratch_;
  out.retrieve_all();
  if (has_block_) {  // left by a message whose encoding failed
    has_block_ = false;
    block_ = Bytes();
  }
  if (gen_ == Generation::k6) {
    const auto t = static_cast<std::uint8_t>(type);
    out.append(&t, 1);
    brine::dump_tuple_header(2, out);
  } else {
    brine::dump_tuple_header(3, out);
    brine::dump_int(static_cast<std::int64_t>(type), out);
  }
  // Sequence numbers count up from 0 and wrap nowhere near INT64_MAX.
  brine::dump_int(static_cast<std::int64_t>(seq), out);
  return out;
}

Buffer& MessageWriter::begin_request(Handler h, std::uint64_t seq) {
  Buffer& out = begin(MsgType::kRequest, seq);  // body: (handler, boxed args tuple)
  brine::dump_tuple_header(2, out);
  brine::dump_int(static_cast<std::int64_t>(h), out);
  return out;
}

void MessageWriter::finish() {
  Buffer& out = scratch_;
  if (has_block_) {
    has_block_ = false;
    const std::size_t n = block_.size();
    Buffer head(std::move(out));
    scratch_ = Buffer();
    channel_.send(OutFrame::spliced(std::move(head), block_at_, std::exchange(block_, Bytes())));
    uncopied_ += n;
    return;
  }
  if (out.readable_bytes() <= kCopiedMessage) {
    channel_.send(OutFrame::copied(out.view()));
    out.retrieve_all();
  } else {
    channel_.send(OutFrame(std::move(out)));
    scratch_ = Buffer();
  }
}

void MessageWriter::send(MsgType type, std::uint64_t seq, const Value& body) {
  Buffer& out = begin(type, seq);
  brine::dump_into(body, out);
  finish();
}

void MessageWriter::boxed_tuple(const std::vector<Any>& items, Buffer& out) {
  brine::dump_tuple_header(2, out);
  dump_label(Label::kTuple, out);
  brine::dump_tuple_header(items.size(), out);
  for (const Any& item : items) boxed(item, out);
}

void MessageWriter::value_tuple(std::span<Value> values, Buffer& out) {
  brine::dump_tuple_header(2, out);
  dump_label(Label::kValue, out);
  brine::dump_tuple_header(values.size(), out);
  for (Value& v : values) {
    if (!(splice_ok_ && !has_block_ && v.is_bytes() && splice_bytes(v, out, false))) brine::dump_into(v, out);
  }
}

void MessageWriter::boxed_tuple_owned(std::vector<Any>& items, Buffer& out) {
  if (std::all_of(items.begin(), items.end(), [](const Any& a) { return a.kind() == Any::Kind::kValue; })) {
    // A tuple of plain values is itself a plain value: shorter on the wire and quicker to
    // unbox at either kind of peer than a TUPLE of VALUEs.
    brine::dump_tuple_header(2, out);
    dump_label(Label::kValue, out);
    brine::dump_tuple_header(items.size(), out);
    for (Any& item : items) {
      Value& v = std::get<0>(item.v_);
      if (!(splice_ok_ && !has_block_ && v.is_bytes() && splice_bytes(v, out, false)))
        brine::dump_into(v, out);
    }
    return;
  }
  brine::dump_tuple_header(2, out);
  dump_label(Label::kTuple, out);
  brine::dump_tuple_header(items.size(), out);
  for (Any& item : items) boxed_owned(item, out);
}

void MessageWriter::boxed_owned(Any& a, Buffer& out) {
  if (splice_ok_ && !has_block_ && a.kind() == Any::Kind::kValue) {
    Value& v = std::get<0>(a.v_);
    if (v.is_bytes() && splice_bytes(v, out, true)) return;
  }
  boxed(a, out);
}

bool MessageWriter::splice_bytes(Value& v, Buffer& out, bool boxed) {
  const std::size_t n = v.as_bytes().size();
  if (n < kSpliceMin || n > std::numeric_limits<std::uint32_t>::max()) return false;
  // (VALUE, bytes) when boxed: the boxing, then BYTES_L4 and the length; the bytes themselves
  // follow in the frame, after the block_at_ bytes written so far.
  if (boxed) {
    brine::dump_tuple_header(2, out);
    dump_label(Label::kValue, out);
  }
  std::uint8_t header[5] = {brine::tag::kBytesL4};
  store_be32(header + 1, static_cast<std::uint32_t>(n));
  out.append(header, sizeof header);
  block_at_ = out.readable_bytes();
  block_ = std::move(v).take_bytes();
  has_block_ = true;
  return true;
}

void MessageWriter::boxed(const Any& a, Buffer& out) {
  switch (a.kind()) {
    case Any::Kind::kValue:
      brine::dump_tuple_header(2, out);
      dump_label(Label::kValue, out);
      brine::dump_into(std::get<0>(a.v_), out);
      return;
    case Any::Kind::kTuple: boxed_tuple(std::get<1>(a.v_), out); return;
    case Any::Kind::kLocal: {
      const ObjectPtr& obj = std::get<2>(a.v_);
      if (obj && ::tether::detail::is_pending_instance(*obj)) {
        // A C++ object of a class type (to_any(shared_ptr<T>)): sent as this connection's class.
        const auto& pending = static_cast<const ::tether::detail::PendingInstance&>(*obj);
        if (!classes_) ::tether::detail::throw_unbound_class(pending.type());
        boxed(Any(classes_->bind(obj)), out);
        return;
      }
      if (const Netref* home = obj ? obj->forwards_to() : nullptr) {
        const NetrefState* st = home->state().get();
        if (st && st->owner == owner_ && !st->core.expired()) {
          netref(*home, out);  // one of this peer's objects, lent onward and coming back home
          return;
        }
      }
      const std::string& id_pack = exports_.lend(obj);
      brine::dump_tuple_header(2, out);
      dump_label(Label::kRemoteRef, out);
      out.append(id_pack);
      return;
    }
    case Any::Kind::kRemote: netref(std::get<3>(a.v_), out); return;
  }
  throw UsageError("invalid Any");
}

void MessageWriter::netref(const Netref& ref, Buffer& out) {
  if (!ref.valid()) {
    brine::dump_tuple_header(2, out);
    dump_label(Label::kValue, out);
    brine::dump_none(out);
    return;
  }
  const NetrefState& st = *ref.state();
  if (st.core.expired()) {
    // Its connection is gone: nothing could be forwarded to, and the peer must not get an
    // object that fails every operation.
    throw UsageError("a Netref whose connection is closed cannot be sent");
  }
  if (st.owner != owner_) {
    // Another connection's proxy: lent as an object of ours that forwards to it.
    if (!foreign_) throw UsageError("a Netref can only be sent back over the connection it came from");
    boxed(Any(foreign_(ref)), out);
    return;
  }
  brine::dump_tuple_header(2, out);
  dump_label(Label::kLocalRef, out);
  out.append(st.key);  // the id_pack as dumped
}

Any kwargs_tuple(Kwargs kwargs) {
  std::vector<Any> pairs;
  pairs.reserve(kwargs.size());
  for (auto& [k, v] : kwargs) pairs.push_back(Any::tuple(make_args(Value(k), std::move(v))));
  return Any::tuple(std::move(pairs));
}

}  // namespace tether::rpc::detail
