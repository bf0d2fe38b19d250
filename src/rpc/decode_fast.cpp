// The fast decoding path: envelope, request arguments and reply values read with
// brine::Reader straight into Any (wire spec §4–§5), with no intermediate Value tuples.
//
// It decides nothing on its own. Whatever it does not recognise (exception replies, CLOSE,
// unknown handlers, unusual envelope or boxing shapes, references it cannot resolve) makes it
// return false, and the message is decoded again by the general path (message_reader.cpp),
// whose errors are the reference. Brine errors (malformed bytes, limits) propagate from here;
// the Reader makes them identical to the general path's, which decodes the same bytes in the
// same order.

#include <fmt/format.h>

#include "rpc/message_reader.hpp"

namespace tether::rpc::detail {

using brine::Reader;
using brine::Value;

namespace {

std::span<const std::uint8_t> as_bytes(const std::string& s) noexcept {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

struct IdPack {
  std::string_view name;
  std::int64_t class_id = 0;
  std::int64_t instance_id = 0;
};

/// (name: str, class id: int64, instance id: int64), the shape RPyC always sends.
bool read_id_pack(Reader& r, std::size_t depth, IdPack& out) {
  auto n = r.try_tuple(depth);
  if (!n || *n != 3) return false;
  auto name = r.try_str();
  if (!name) return false;
  auto cid = r.try_int64();
  if (!cid) return false;
  auto iid = r.try_int64();
  if (!iid) return false;
  out = IdPack{*name, *cid, *iid};
  return true;
}

/// Reads one value into `v` (a fresh, None Value): small ints without the general decoder.
inline void read_leaf_or_value(Reader& r, std::size_t depth, Value& v) {
  if (std::optional<std::int64_t> i = r.try_int64()) {
    v = Value(*i);
  } else {
    r.read(v, depth);
  }
}

/// The opening of a boxed pair `(label, ...)` at `depth` with this label: consumes the pair's
/// header and the label, and leaves the boxed item next. False (having read something) when
/// it is another shape.
bool take_label(Reader& r, std::size_t depth, Label label) {
  return r.try_tuple(depth) == std::optional<std::size_t>(2) &&
         r.try_int64() == std::optional<std::int64_t>(static_cast<std::int64_t>(label));
}

}  // namespace

MessageDecoder::Decoded MessageDecoder::boxed(Reader& r, std::size_t depth, Any& out, std::vector<DeferredRef>& refs) {
  auto n = r.try_tuple(depth);
  if (!n || *n != 2) return Decoded::kFail;
  auto label = r.try_int64();
  if (!label) return Decoded::kFail;
  switch (*label) {
    case 1: {  // VALUE, decoded in place when `out` holds a Value already (a fresh Any does)
      if (out.v_.index() == 0) {
        read_leaf_or_value(r, depth + 1, std::get<0>(out.v_));
      } else {
        out = Any(r.read(depth + 1));
      }
      return Decoded::kPlain;
    }
    case 2: {  // TUPLE: plain tuples become one Value tuple, as Any::tuple makes them
      auto m = r.try_tuple(depth + 1);
      if (!m) return Decoded::kFail;
      std::vector<Any> items(*m);
      bool plain = true;
      for (Any& item : items) {
        const Decoded d = boxed(r, depth + 2, item, refs);
        if (d == Decoded::kFail) return d;
        if (d == Decoded::kRef || !item.is_value()) plain = false;
      }
      if (plain) {
        Value::Tuple t;
        t.reserve(items.size());
        for (Any& item : items) t.push_back(std::move(std::get<0>(item.v_)));
        out = Any(Value::tuple(std::move(t)));
        return Decoded::kPlain;
      }
      // Moving the vector keeps its items where they are: deferred slots stay valid.
      out.v_ = std::move(items);
      return Decoded::kRef;
    }
    case 3: {  // LOCAL_REF: one of our exports
      // A peer echoes our id_packs byte for byte (brine's encoding is canonical): one that
      // named recently is recognised by a comparison instead of being parsed.
      for (ExportTable::Slot e : exports_.recent()) {
        if (e && r.try_encoded(as_bytes(e->second.wire), e->second.wire_shape, depth + 1)) {
          out = Any(e->second.obj);
          exports_.note_recent(e);
          return Decoded::kRef;
        }
      }
      IdPack id;
      if (!read_id_pack(r, depth + 1, id)) return Decoded::kFail;
      ExportTable::Slot e = exports_.find(id.name, id.class_id, id.instance_id);
      if (!e) return Decoded::kFail;
      out = Any(e->second.obj);
      exports_.note_recent(e);
      return Decoded::kRef;
    }
    case 4: {  // REMOTE_REF: a proxy, made by whoever acts on the message
      IdPack id;
      if (!read_id_pack(r, depth + 1, id)) return Decoded::kFail;
      refs.push_back(DeferredRef{
          &out, Value::make_tuple(Value(std::string(id.name)), Value(id.class_id), Value(id.instance_id))});
      return Decoded::kRef;
    }
    default: return Decoded::kFail;
  }
}

bool MessageDecoder::boxed_items(Reader& r, std::size_t depth, std::vector<Any>& out, std::vector<DeferredRef>& refs,
                                 bool none_is_empty) {
  auto n = r.try_tuple(depth);
  if (!n || *n != 2) return false;
  auto label = r.try_int64();
  if (!label) return false;
  if (*label == 1) {
    // A tuple of plain values may travel as one VALUE (tether's encoder sends it so): its
    // items are read straight into the slots. None stands for no arguments.
    if (auto k = r.try_tuple(depth + 1)) {
      out.clear();
      out.resize(*k);
      for (Any& item : out) read_leaf_or_value(r, depth + 2, std::get<0>(item.v_));
      return true;
    }
    Value v = r.read(depth + 1);  // not a tuple (try_tuple takes every tuple tag)
    if (v.is_none() && none_is_empty) {
      out.clear();
      return true;
    }
    return false;
  }
  if (*label != 2) return false;
  auto m = r.try_tuple(depth + 1);
  if (!m) return false;
  out.resize(*m);
  for (Any& item : out) {
    if (boxed(r, depth + 2, item, refs) == Decoded::kFail) return false;
  }
  return true;
}

bool MessageDecoder::request_args(Reader& r, Handler h, RequestArgs& args, std::vector<DeferredRef>& refs) {
  // The positional-argument tuple of CALL (item 1) and CALLATTR (item 2) is kept as a vector,
  // which the handler then moves out; everything else is boxed as usual.
  const std::size_t call_args = h == Handler::kCallAttr ? 2 : h == Handler::kCall ? 1 : SIZE_MAX;
  if (!take_label(r, 2, Label::kTuple)) return false;
  auto m = r.try_tuple(3);
  if (!m) return false;
  args.resize(*m);
  std::span<Any> items = args.items();
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i == call_args) {
      std::vector<Any> inner;
      if (!boxed_items(r, 4, inner, refs, true)) return false;
      items[i].v_ = std::move(inner);  // a vector's items do not move with it: slots stay valid
    } else if (boxed(r, 4, items[i], refs) == Decoded::kFail) {
      return false;
    }
  }
  return true;
}

bool MessageDecoder::call_shape(Reader& r, Handler h, CallShape& call, std::vector<DeferredRef>& refs) {
  // (TUPLE, (target, [(VALUE, name),] args[, kwargs])), at the depths request_args reads;
  // GETATTR's is (TUPLE, (target, (VALUE, name))).
  const bool getattr = h == Handler::kGetAttr;
  const std::size_t fixed = h == Handler::kCallAttr ? 3 : 2;
  const std::size_t most = getattr ? 2 : fixed + 1;
  if (!take_label(r, 2, Label::kTuple)) return false;
  auto m = r.try_tuple(3);
  if (!m || *m < fixed || *m > most) return false;
  Any target;
  if (boxed(r, 4, target, refs) != Decoded::kRef || !target.is_local()) return false;
  call.obj = std::move(std::get<2>(target.v_));
  if (h != Handler::kCall) {
    if (!take_label(r, 4, Label::kValue)) return false;
    auto s = r.try_str();
    if (!s) return false;
    call.name.assign(s->data(), s->size());
  }
  if (getattr) return true;
  if (!boxed_items(r, 4, call.args, refs, true)) return false;
  if (*m > fixed) {
    // (VALUE, ()), no keyword arguments, is what clients send: recognised without a Value.
    const Reader::Mark at = r.mark();
    if (take_label(r, 4, Label::kValue) && r.try_tuple(5) == std::optional<std::size_t>(0)) return true;
    r.rewind(at);
    if (boxed(r, 4, call.kwargs, refs) == Decoded::kFail) return false;
  }
  return true;
}

bool MessageDecoder::decode_fast(std::span<const std::uint8_t> payload, Generation gen, Message& out) {
  // Envelope: 5.x (msg, seq, body) | 6.x u8 msg + (seq, body).
  std::int64_t msg = 0;
  std::span<const std::uint8_t> brine_part = payload;
  if (gen == Generation::k6) {
    msg = payload[0];
    brine_part = payload.subspan(1);
  }
  Reader r(brine_part, limits_);
  if (gen == Generation::k6) {
    if (r.try_tuple(0) != std::optional<std::size_t>(2)) return false;
  } else {
    if (r.try_tuple(0) != std::optional<std::size_t>(3)) return false;
    auto m = r.try_int64();
    if (!m) return false;
    msg = *m;
  }
  auto seq_read = r.try_int64();
  if (!seq_read) return false;
  out.seq = static_cast<std::uint64_t>(*seq_read);

  if (msg == static_cast<std::int64_t>(MsgType::kReply)) {
    out.type = MsgType::kReply;
    if (boxed(r, 1, out.value, out.refs) == Decoded::kFail) return false;
    r.expect_end();
    out.cost = r.decoded_bytes();
    return true;
  }
  if (msg != static_cast<std::int64_t>(MsgType::kRequest)) return false;
  out.type = MsgType::kRequest;

  if (r.try_tuple(1) != std::optional<std::size_t>(2)) return false;
  auto handler_read = r.try_int64();
  if (!handler_read) return false;
  const std::int64_t hn = *handler_read;
  if (hn < 1 || hn > 20 || hn == static_cast<std::int64_t>(Handler::kClose)) return false;
  out.handler = hn;
  const auto h = static_cast<Handler>(hn);
  if (h == Handler::kCallAttr || h == Handler::kCall || h == Handler::kGetAttr) {
    const Reader::Mark at = r.mark();
    if (call_shape(r, h, out.call, out.refs)) {
      r.expect_end();
      out.call.present = true;
      out.cost = r.decoded_bytes();
      return true;
    }
    r.rewind(at);  // an unusual shape: read again below, checked by the dispatcher
    out.refs.clear();
    out.call = CallShape{};
  }
  if (!request_args(r, h, out.args, out.refs)) return false;
  r.expect_end();
  out.cost = r.decoded_bytes();
  return true;
}

}  // namespace tether::rpc::detail
