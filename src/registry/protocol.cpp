#include "tether/registry/protocol.hpp"

#include <algorithm>
#include <cctype>

#include "tether/brine/codec.hpp"
#include "tether/brine/value.hpp"

namespace tether::registry {

namespace {

using brine::Value;

/// Bounds for decoding: no more nesting than a request's args need (magic, command, args,
/// aliases), and `max_bytes` of input.
brine::Limits limits_for(std::size_t max_bytes, std::size_t max_container_len) {
  brine::Limits l;
  l.max_depth = 4;
  l.max_container_len = max_container_len;
  l.max_total_values = 4 * max_container_len;
  l.max_total_bytes = max_bytes;
  l.max_int_digits = 32;
  return l;
}

/// Requests are at most one datagram; replies are read up to kMaxUdpListReply bytes.
brine::Limits request_limits() { return limits_for(kMaxDatagram, 64); }
brine::Limits reply_limits() { return limits_for(kMaxUdpListReply, 4096); }

std::optional<Value> load_bounded(std::span<const std::uint8_t> data, const brine::Limits& limits) {
  if (data.empty() || data.size() > limits.max_total_bytes) return std::nullopt;
  try {
    return brine::load(data, limits);
  } catch (const Error&) {
    return std::nullopt;
  }
}

std::optional<std::uint16_t> as_port(const Value& v) {
  if (!v.is_int64()) return std::nullopt;  // bool is not int here: is_int64 excludes it
  const std::int64_t p = v.as_int64();
  if (p < 1 || p > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(p);
}

std::optional<std::string> as_name(const Value& v, const RequestLimits& limits) {
  if (!v.is_str() || v.as_str().size() > limits.max_name_bytes) return std::nullopt;
  return v.as_str();
}

std::optional<Command> command_named(std::string_view text) {
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower == "register") return Command::kRegister;
  if (lower == "unregister") return Command::kUnregister;
  if (lower == "query") return Command::kQuery;
  if (lower == "list") return Command::kList;
  return std::nullopt;
}

Bytes request(std::string_view command, Value args) {
  return brine::dump(Value::make_tuple(std::string(kMagic), std::string(command), std::move(args)));
}

/// Arguments of `command`, or nullopt when they do not fit it.
std::optional<Request> parse_args(Command command, const Value::Tuple& args, const RequestLimits& limits) {
  Request r;
  r.command = command;
  switch (command) {
    case Command::kRegister: {
      if (args.size() != 2 || !args[0].is_tuple()) return std::nullopt;
      const Value::Tuple& names = args[0].as_tuple();
      if (names.size() > limits.max_aliases) return std::nullopt;
      for (const Value& n : names) {
        std::optional<std::string> name = as_name(n, limits);
        if (!name) return std::nullopt;
        r.aliases.push_back(std::move(*name));
      }
      std::optional<std::uint16_t> port = as_port(args[1]);
      if (!port) return std::nullopt;
      r.port = *port;
      return r;
    }
    case Command::kUnregister: {
      if (args.size() != 1) return std::nullopt;
      std::optional<std::uint16_t> port = as_port(args[0]);
      if (!port) return std::nullopt;
      r.port = *port;
      return r;
    }
    case Command::kQuery: {
      if (args.size() != 1) return std::nullopt;
      std::optional<std::string> name = as_name(args[0], limits);
      if (!name) return std::nullopt;
      r.name = std::move(*name);
      return r;
    }
    case Command::kList: {
      // RPyC sends ((filter_host,),): the host filter is the first element of a 1-tuple.
      if (args.size() != 1 || !args[0].is_tuple() || args[0].as_tuple().size() != 1) return std::nullopt;
      const Value& filter = args[0].as_tuple()[0];
      if (filter.is_none()) return r;
      std::optional<std::string> host = as_name(filter, limits);
      if (!host) return std::nullopt;
      if (!host->empty()) r.filter_host = std::move(*host);  // Python: an empty filter is falsy
      return r;
    }
  }
  return std::nullopt;
}

/// Appends encoded items while the whole stays within max_bytes; returns the tuple's bytes.
Bytes bounded_tuple(const std::vector<Value>& items, std::size_t max_bytes, std::size_t* kept) {
  // A tuple's header is at most 5 bytes (TUPL4 + u32 length); items are summed one by one.
  std::size_t n = 0;
  std::size_t total = 5;
  for (const Value& v : items) {
    const std::size_t size = brine::encoded_size(v);
    if (total + size > max_bytes) break;
    total += size;
    ++n;
  }
  if (kept) *kept = n;
  Value::Tuple out(items.begin(), items.begin() + static_cast<std::ptrdiff_t>(n));
  return brine::dump(Value::tuple(std::move(out)));
}

}  // namespace

std::string_view to_string(Command c) noexcept {
  switch (c) {
    case Command::kRegister: return "REGISTER";
    case Command::kUnregister: return "UNREGISTER";
    case Command::kQuery: return "QUERY";
    case Command::kList: return "LIST";
  }
  return "?";
}

std::string_view to_string(DecodeError e) noexcept {
  switch (e) {
    case DecodeError::kGarbage: return "undecodable";
    case DecodeError::kBadMagic: return "bad magic";
    case DecodeError::kUnknownCommand: return "unknown command";
    case DecodeError::kBadArguments: return "bad arguments";
  }
  return "?";
}

Result<Request, DecodeError> decode_request(std::span<const std::uint8_t> data, const RequestLimits& limits) {
  std::optional<Value> v = load_bounded(data, request_limits());
  if (!v) return Unexpected(DecodeError::kGarbage);
  if (!v->is_tuple() || v->as_tuple().size() != 3) return Unexpected(DecodeError::kBadMagic);
  const Value::Tuple& t = v->as_tuple();
  if (!t[0].is_str() || t[0].as_str() != kMagic) return Unexpected(DecodeError::kBadMagic);
  if (!t[1].is_str()) return Unexpected(DecodeError::kUnknownCommand);
  std::optional<Command> command = command_named(t[1].as_str());
  if (!command) return Unexpected(DecodeError::kUnknownCommand);
  if (!t[2].is_tuple()) return Unexpected(DecodeError::kBadArguments);
  std::optional<Request> r = parse_args(*command, t[2].as_tuple(), limits);
  if (!r) return Unexpected(DecodeError::kBadArguments);
  return std::move(*r);
}

Bytes encode_register(const std::vector<std::string>& aliases, std::uint16_t port) {
  Value::Tuple names;
  names.reserve(aliases.size());
  for (const std::string& a : aliases) names.emplace_back(a);
  return request("REGISTER", Value::make_tuple(Value::tuple(std::move(names)), port));
}

Bytes encode_unregister(std::uint16_t port) { return request("UNREGISTER", Value::make_tuple(port)); }

Bytes encode_query(std::string_view name) { return request("QUERY", Value::make_tuple(std::string(name))); }

Bytes encode_list(const std::optional<std::string>& filter_host) {
  Value filter = filter_host ? Value(*filter_host) : Value();
  return request("LIST", Value::make_tuple(Value::make_tuple(std::move(filter))));
}

Bytes encode_ok_reply() { return brine::dump(Value("OK")); }

Bytes encode_query_reply(const std::vector<HostPort>& entries, std::size_t max_bytes, std::size_t* kept) {
  std::vector<Value> items;
  items.reserve(entries.size());
  for (const HostPort& e : entries) items.push_back(Value::make_tuple(e.host, e.port));
  return bounded_tuple(items, max_bytes, kept);
}

Bytes encode_list_reply(const std::optional<std::vector<std::string>>& names, std::size_t max_bytes,
                        std::size_t* kept) {
  if (!names) {
    if (kept) *kept = 0;
    return brine::dump(Value());
  }
  std::vector<Value> items(names->begin(), names->end());
  return bounded_tuple(items, max_bytes, kept);
}

bool is_ok_reply(std::span<const std::uint8_t> data) noexcept {
  try {
    std::optional<Value> v = load_bounded(data, reply_limits());
    return v && v->is_str() && v->as_str() == "OK";
  } catch (...) {
    return false;
  }
}

std::optional<std::vector<HostPort>> decode_query_reply(std::span<const std::uint8_t> data) {
  std::optional<Value> v = load_bounded(data, reply_limits());
  if (!v || !v->is_tuple()) return std::nullopt;
  std::vector<HostPort> out;
  for (const Value& item : v->as_tuple()) {
    if (!item.is_tuple() || item.as_tuple().size() != 2) return std::nullopt;
    const Value& host = item.as_tuple()[0];
    std::optional<std::uint16_t> port = as_port(item.as_tuple()[1]);
    if (!host.is_str() || !port) return std::nullopt;
    out.push_back(HostPort{host.as_str(), *port});
  }
  return out;
}

std::optional<std::optional<std::vector<std::string>>> decode_list_reply(std::span<const std::uint8_t> data) {
  std::optional<Value> v = load_bounded(data, reply_limits());
  if (!v) return std::nullopt;
  if (v->is_none()) return std::optional<std::vector<std::string>>();
  if (!v->is_tuple()) return std::nullopt;
  std::vector<std::string> names;
  for (const Value& item : v->as_tuple()) {
    if (!item.is_str()) return std::nullopt;
    names.push_back(item.as_str());
  }
  return std::optional<std::vector<std::string>>(std::move(names));
}

}  // namespace tether::registry
