// The general decoding path: the whole message as a Value tree, then unboxed. It decodes any
// valid message and words every refusal; the fast path (decode_fast.cpp) must agree with it.

#include "rpc/message_reader.hpp"

#include <fmt/format.h>

#include "tether/base/error.hpp"
#include "tether/rpc/py_error.hpp"

namespace tether::rpc::detail {

using brine::Value;

namespace {

/// Checks the shape (name: str, class_id: int, instance_id: int) of an id_pack.
void check_id_pack(const Value& v) {
  if (!v.is_tuple() || v.as_tuple().size() != 3 || !v.as_tuple()[0].is_str() || !v.as_tuple()[1].is_int() ||
      !v.as_tuple()[2].is_int()) {
    throw PyError("builtins", "ValueError", {Value("invalid id_pack: " + v.repr(200))});
  }
}

void check_boxed(const Value& boxed) {
  if (!boxed.is_tuple() || boxed.as_tuple().size() != 2 || !boxed.as_tuple()[0].is_int64()) {
    throw PyError("ValueError", "invalid boxed value " + boxed.repr(100));
  }
}

}  // namespace

void RequestArgs::resize(std::size_t count) {
  for (std::size_t i = 0; i < std::min(n, small.size()); ++i) small[i] = Any();
  large.clear();
  n = count;
  if (count > small.size()) large.resize(count);
}

void MessageDecoder::decode(std::span<const std::uint8_t> payload, Generation gen, Message& out) {
  if (fast_on_) {
    if (decode_fast(payload, gen, out)) {
      ++fast_decoded_;
      return;
    }
    // Start over: nothing the fast path read stays.
    out.refs.clear();
    out.args.resize(0);
    out.call = CallShape{};
    out.value = Any();
  }
  decode_general(payload, gen, out);
}

Value MessageDecoder::load_counted(std::span<const std::uint8_t> bytes, std::size_t& cost) const {
  brine::Reader r(bytes, limits_);
  Value v;
  r.read(v, 0);
  r.expect_end();
  cost = r.decoded_bytes();
  return v;
}

void MessageDecoder::decode_general(std::span<const std::uint8_t> payload, Generation gen, Message& out) {
  std::uint64_t msg = 0;
  Value body;
  if (gen == Generation::k6) {
    msg = payload[0];
    Value env = load_counted(payload.subspan(1), out.cost);
    if (!env.is_tuple() || env.as_tuple().size() != 2 || !env.as_tuple()[0].is_int64()) {
      throw ProtocolError("malformed 6.x message envelope");
    }
    auto items = std::move(env).take_tuple();
    out.seq = static_cast<std::uint64_t>(items[0].as_int64());
    body = std::move(items[1]);
  } else {
    Value env = load_counted(payload, out.cost);
    if (!env.is_tuple() || env.as_tuple().size() != 3 || !env.as_tuple()[0].is_int64() ||
        !env.as_tuple()[1].is_int64()) {
      throw ProtocolError("malformed 5.x message envelope");
    }
    auto items = std::move(env).take_tuple();
    msg = static_cast<std::uint64_t>(items[0].as_int64());
    out.seq = static_cast<std::uint64_t>(items[1].as_int64());
    body = std::move(items[2]);
  }

  switch (msg) {
    case 1: {
      out.type = MsgType::kRequest;
      if (!body.is_tuple() || body.as_tuple().size() != 2 || !body.as_tuple()[0].is_int64()) {
        throw ProtocolError("malformed request body");
      }
      auto parts = std::move(body).take_tuple();
      out.handler = parts[0].as_int64();
      if (out.handler < 1 || out.handler > 20) {
        // Unknown handler: refused as RPyC does, with KeyError(N); the connection stays up.
        out.error = std::make_exception_ptr(PyError("builtins", "KeyError", {Value(out.handler)}));
        return;
      }
      if (out.handler == static_cast<std::int64_t>(Handler::kClose)) return;  // arguments unused
      try {
        // (TUPLE, (boxed, ...)) or (VALUE, (plain, ...)): items unboxed into their final slots.
        Value& boxed = parts[1];
        check_boxed(boxed);
        Value::Tuple pair = std::move(boxed).take_tuple();
        const std::int64_t label = pair[0].as_int64();
        if (label == 2 && pair[1].is_tuple()) {
          Value::Tuple members = std::move(pair[1]).take_tuple();
          out.args.resize(members.size());
          std::span<Any> slots = out.args.items();
          for (std::size_t i = 0; i < members.size(); ++i) unbox_into(std::move(members[i]), slots[i], out.refs);
        } else {
          Any whole;
          unbox_into(Value::make_tuple(Value(label), std::move(pair[1])), whole, out.refs);
          if (!whole.is_tuple()) throw PyError("TypeError", "request arguments must be a tuple");
          std::vector<Any> items = std::move(whole).take_items();
          out.args.resize(items.size());
          std::span<Any> slots = out.args.items();
          for (std::size_t i = 0; i < items.size(); ++i) slots[i] = std::move(items[i]);
        }
      } catch (...) {
        out.error = std::current_exception();
        out.refs.clear();
        out.args.resize(0);
      }
      return;
    }
    case 2:
      out.type = MsgType::kReply;
      try {
        unbox_into(std::move(body), out.value, out.refs);
      } catch (...) {
        // The peer's reply breaks the boxing rules (§5): a protocol error of the peer's, which
        // the caller gets as such (the connection stays up: the request was answered).
        out.error = std::make_exception_ptr(ProtocolError("malformed reply: " + describe_current_exception()));
        out.refs.clear();
        out.value = Any();
      }
      return;
    case 3:
      out.type = MsgType::kException;
      out.body = std::move(body);
      return;
    default: throw ProtocolError(fmt::format("invalid message type: {}", msg));
  }
}

void MessageDecoder::unbox_into(Value boxed, Any& slot, std::vector<DeferredRef>& refs) {
  check_boxed(boxed);
  Value::Tuple pair = std::move(boxed).take_tuple();
  switch (pair[0].as_int64()) {
    case 1: slot = Any(std::move(pair[1])); return;
    case 2: {
      if (!pair[1].is_tuple()) throw PyError("ValueError", "label 2 needs a tuple");
      Value::Tuple members = std::move(pair[1]).take_tuple();
      std::vector<Any> items(members.size());
      const std::size_t refs_before = refs.size();
      for (std::size_t i = 0; i < members.size(); ++i) unbox_into(std::move(members[i]), items[i], refs);
      if (refs.size() == refs_before) {
        slot = Any::tuple(std::move(items));  // may become a plain tuple
      } else {
        slot.v_ = std::move(items);  // the buffer moves, not the items: deferred slots stay valid
      }
      return;
    }
    case 3: {
      check_id_pack(pair[1]);
      ObjectPtr obj = exports_.find(pair[1]);
      if (!obj) throw PyError("builtins", "KeyError", {pair[1]});
      slot = Any(std::move(obj));
      return;
    }
    case 4:
      check_id_pack(pair[1]);
      refs.push_back(DeferredRef{&slot, std::move(pair[1])});
      return;
    default: throw PyError("ValueError", fmt::format("invalid label {}", pair[0].as_int64()));
  }
}

}  // namespace tether::rpc::detail
