#pragma once
/// \file Printing call results: Python repr, or JSON.
///
/// JSON rule (docs/cli.md): None -> null; bool -> true/false; ints that fit 64 bits -> numbers,
/// bigger ints -> decimal strings; finite floats -> numbers, inf/-inf/nan -> the strings
/// "inf", "-inf", "nan"; str -> string; bytes -> base64 string (RFC 4648, padded); tuples,
/// lists, sets and frozensets -> arrays; dicts -> objects when every key is a str, else arrays
/// of [key, value] pairs; complex, slice, Ellipsis, NotImplemented and other remote objects ->
/// their repr as a string. Remote lists, tuples, sets and dicts are fetched item by item.

#include <nlohmann/json.hpp>
#include <string>

#include "tether/rpc/any.hpp"
#include "tether/service/sync.hpp"

namespace tether::tools {

/// Python's repr of a call result; netrefs are asked for their repr on the peer.
[[nodiscard]] std::string result_repr(SyncConnection& conn, const Any& a);

/// The JSON form of a call result (see the file comment). `depth` bounds nested remote fetches.
[[nodiscard]] nlohmann::json result_json(SyncConnection& conn, const Any& a, int depth = 16);

/// A brine value as JSON (the same rule).
[[nodiscard]] nlohmann::json value_json(const brine::Value& v);

[[nodiscard]] std::string base64(std::string_view data);

}  // namespace tether::tools
