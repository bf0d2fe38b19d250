// literal_repr() and the conversions between literals and brine values (literal.hpp).

#include <optional>
#include <string>
#include <utility>

#include "literal.hpp"

namespace tether::tools {

namespace {

void repr_into(const Literal& l, std::string& out) {
  switch (l.kind) {
    case Literal::Kind::kValue: out += l.value.repr(); return;
    case Literal::Kind::kTuple:
      out += '(';
      for (std::size_t i = 0; i < l.items.size(); ++i) {
        if (i) out += ", ";
        repr_into(l.items[i], out);
      }
      if (l.items.size() == 1) out += ',';
      out += ')';
      return;
    case Literal::Kind::kList:
      out += '[';
      for (std::size_t i = 0; i < l.items.size(); ++i) {
        if (i) out += ", ";
        repr_into(l.items[i], out);
      }
      out += ']';
      return;
    case Literal::Kind::kSet:
      if (l.items.empty()) {
        out += "set()";
        return;
      }
      out += '{';
      for (std::size_t i = 0; i < l.items.size(); ++i) {
        if (i) out += ", ";
        repr_into(l.items[i], out);
      }
      out += '}';
      return;
    case Literal::Kind::kDict:
      out += '{';
      for (std::size_t i = 0; i + 1 < l.items.size(); i += 2) {
        if (i) out += ", ";
        repr_into(l.items[i], out);
        out += ": ";
        repr_into(l.items[i + 1], out);
      }
      out += '}';
      return;
  }
}

}  // namespace

std::string literal_repr(const Literal& lit) {
  std::string out;
  repr_into(lit, out);
  return out;
}

std::optional<brine::Value> literal_to_value(const Literal& lit) {
  switch (lit.kind) {
    case Literal::Kind::kValue: return lit.value;
    case Literal::Kind::kTuple: {
      brine::Value::Tuple t;
      t.reserve(lit.items.size());
      for (const auto& i : lit.items) {
        auto v = literal_to_value(i);
        if (!v) return std::nullopt;
        t.push_back(std::move(*v));
      }
      return brine::Value::tuple(std::move(t));
    }
    default: return std::nullopt;
  }
}

Literal literal_from_value(const brine::Value& v) {
  if (!v.is_tuple()) return Literal::of(v);
  Literal t;
  t.kind = Literal::Kind::kTuple;
  for (const auto& i : v.as_tuple()) t.items.push_back(literal_from_value(i));
  return t;
}

}  // namespace tether::tools
