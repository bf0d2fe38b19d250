#include "tether/rpc/any.hpp"

#include <fmt/format.h>

#include "rpc/connection_core.hpp"
#include "tether/rpc/object.hpp"

namespace tether {

Any Any::tuple(std::vector<Any> items) {
  bool plain = true;
  for (const auto& i : items) {
    if (!i.is_value()) {
      plain = false;
      break;
    }
  }
  Any out;
  if (plain) {
    brine::Value::Tuple t;
    t.reserve(items.size());
    for (auto& i : items) t.push_back(std::move(std::get<0>(i.v_)));
    out.v_ = brine::Value::tuple(std::move(t));
  } else {
    out.v_ = std::move(items);
  }
  return out;
}

bool Any::is_none() const noexcept { return v_.index() == 0 && std::get<0>(v_).is_none(); }

bool Any::is_tuple() const noexcept {
  return v_.index() == 1 || (v_.index() == 0 && std::get<0>(v_).is_tuple());
}

const brine::Value& Any::value() const {
  if (v_.index() != 0) throw UsageError("Any holds a reference, not a plain value: " + repr());
  return std::get<0>(v_);
}

std::vector<Any> Any::items() const {
  if (v_.index() == 1) return std::get<1>(v_);
  if (v_.index() == 0 && std::get<0>(v_).is_tuple()) {
    const auto& t = std::get<0>(v_).as_tuple();
    return std::vector<Any>(t.begin(), t.end());
  }
  throw UsageError("Any is not a tuple: " + repr());
}

std::vector<Any> Any::take_items() && {
  std::vector<Any> out;
  if (v_.index() == 1) {
    out = std::move(std::get<1>(v_));
  } else if (v_.index() == 0 && std::get<0>(v_).is_tuple()) {
    brine::Value::Tuple t = std::move(std::get<0>(v_)).take_tuple();
    out.reserve(t.size());
    for (auto& v : t) out.emplace_back(std::move(v));
  } else {
    throw UsageError("Any is not a tuple: " + repr());
  }
  v_ = brine::Value();
  return out;
}

const std::shared_ptr<Object>& Any::object() const {
  if (v_.index() != 2) throw UsageError("Any is not a local object: " + repr());
  return std::get<2>(v_);
}

const Netref& Any::netref() const {
  if (v_.index() != 3) throw UsageError("Any is not a Netref: " + repr());
  return std::get<3>(v_);
}

std::string Any::repr() const {
  switch (v_.index()) {
    case 0: return std::get<0>(v_).repr(200);
    case 1: {
      std::string s = "(";
      const auto& items = std::get<1>(v_);
      for (std::size_t i = 0; i < items.size(); ++i) {
        if (i) s += ", ";
        s += items[i].repr();
      }
      if (items.size() == 1) s += ",";
      return s + ")";
    }
    case 2: return std::get<2>(v_) ? std::get<2>(v_)->repr() : "None";
    default: {
      const Netref& r = std::get<3>(v_);
      return r.valid() ? fmt::format("<netref {}>", r.type_name()) : "<empty netref>";
    }
  }
}

}  // namespace tether
