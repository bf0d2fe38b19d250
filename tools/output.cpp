#include "output.hpp"

#include <cmath>

#include "py_objects.hpp"

namespace tether::tools {

std::string base64(std::string_view data) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < data.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(data[i]) << 16) |
                       (static_cast<unsigned char>(data[i + 1]) << 8) |
                       static_cast<unsigned char>(data[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i < data.size()) {
    unsigned v = static_cast<unsigned char>(data[i]) << 16;
    if (i + 1 < data.size()) v |= static_cast<unsigned char>(data[i + 1]) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < data.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

nlohmann::json value_json(const brine::Value& v) {
  using brine::Type;
  switch (v.type()) {
    case Type::kNone: return nullptr;
    case Type::kBool: return v.as_bool();
    case Type::kInt:
      if (v.is_int64()) return v.as_int64();
      return v.as_big_int().to_string();
    case Type::kFloat: {
      const double d = v.as_double();
      if (std::isnan(d)) return "nan";
      if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
      return d;
    }
    case Type::kStr: return v.as_str();
    case Type::kBytes: {
      const auto& b = v.as_bytes();
      return base64(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
    }
    case Type::kTuple: {
      nlohmann::json arr = nlohmann::json::array();
      for (const auto& i : v.as_tuple()) arr.push_back(value_json(i));
      return arr;
    }
    case Type::kFrozenSet: {
      nlohmann::json arr = nlohmann::json::array();
      for (const auto& i : v.as_frozenset()) arr.push_back(value_json(i));
      return arr;
    }
    default: return v.repr();
  }
}

std::string result_repr(SyncConnection& conn, const Any& a) {
  switch (a.kind()) {
    case Any::Kind::kValue: return a.value().repr();
    case Any::Kind::kLocal: return a.object()->repr();
    case Any::Kind::kRemote: {
      Netref ref = a.netref();
      return conn.run(ref.repr());
    }
    case Any::Kind::kTuple: {
      auto items = a.items();
      std::string out = "(";
      for (std::size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + result_repr(conn, items[i]);
      if (items.size() == 1) out += ",";
      return out + ")";
    }
  }
  return a.repr();
}

namespace {

nlohmann::json pairs_json(SyncConnection& conn, const std::vector<Any>& keys, const std::vector<Any>& values,
                          int depth) {
  bool str_keys = true;
  for (const auto& k : keys) {
    if (!k.is_value() || !k.value().is_str()) str_keys = false;
  }
  if (str_keys) {
    nlohmann::json obj = nlohmann::json::object();
    for (std::size_t i = 0; i < keys.size(); ++i)
      obj[keys[i].value().as_str()] = result_json(conn, values[i], depth - 1);
    return obj;
  }
  nlohmann::json arr = nlohmann::json::array();
  for (std::size_t i = 0; i < keys.size(); ++i) {
    arr.push_back(nlohmann::json::array(
        {result_json(conn, keys[i], depth - 1), result_json(conn, values[i], depth - 1)}));
  }
  return arr;
}

}  // namespace

nlohmann::json result_json(SyncConnection& conn, const Any& a, int depth) {
  if (depth <= 0) return result_repr(conn, a);
  switch (a.kind()) {
    case Any::Kind::kValue: return value_json(a.value());
    case Any::Kind::kTuple: {
      nlohmann::json arr = nlohmann::json::array();
      for (const auto& i : a.items()) arr.push_back(result_json(conn, i, depth - 1));
      return arr;
    }
    case Any::Kind::kLocal: {
      // One of our own containers coming back (echo([1, 2])).
      const auto* c = dynamic_cast<const PyContainer*>(a.object().get());
      if (c == nullptr) return a.object()->repr();
      if (c->kind() == PyContainer::Kind::kDict) {
        std::vector<Any> keys, values;
        for (std::size_t i = 0; i + 1 < c->items().size(); i += 2) {
          keys.push_back(c->items()[i]);
          values.push_back(c->items()[i + 1]);
        }
        return pairs_json(conn, keys, values, depth);
      }
      nlohmann::json arr = nlohmann::json::array();
      for (const auto& i : c->items()) arr.push_back(result_json(conn, i, depth - 1));
      return arr;
    }
    case Any::Kind::kRemote: break;
  }
  Netref ref = a.netref();
  const std::string& t = ref.type_name();
  if (t == "builtins.list" || t == "builtins.tuple" || t == "builtins.set" || t == "builtins.frozenset") {
    std::vector<Any> items = conn.run(ref.to_list());
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& i : items) arr.push_back(result_json(conn, i, depth - 1));
    return arr;
  }
  if (t == "builtins.dict") {
    std::vector<Any> keys = conn.run(ref.to_list());
    std::vector<Any> values;
    for (const auto& k : keys) values.push_back(conn.run(ref.getitem(k)));
    return pairs_json(conn, keys, values, depth);
  }
  return conn.run(ref.repr());
}

}  // namespace tether::tools
