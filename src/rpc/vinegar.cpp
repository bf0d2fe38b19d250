// Exceptions on the wire (RPyC's "vinegar", wire spec §9).

#include <fmt/format.h>

#include <new>
#include <stdexcept>

#include "rpc/connection_core.hpp"
#include "tether/rpc/py_error.hpp"
#include "tether/rpc/remote_exception.hpp"

namespace tether::rpc::detail {

using brine::Value;

namespace {

struct Mapped {
  std::string module = "builtins";
  std::string type;
  std::vector<Value> args;
};

Mapped map_exception(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const PyError& x) {
    return {x.module(), x.type_name(), x.args()};
  } catch (const RemoteException& x) {
    // A peer's exception passing through C++ (e.g. raised by a callback): forward it as is.
    return {x.module(), x.type_name(), x.raw_args()};
  } catch (const RemoteError& x) {
    std::vector<Value> args;
    for (const auto& a : x.args()) args.emplace_back(a);
    return {x.module(), x.type_name(), std::move(args)};
  } catch (const Timeout& x) {
    return {"builtins", "TimeoutError", {Value(x.what())}};
  } catch (const Disconnected& x) {
    return {"builtins", "ConnectionError", {Value(x.what())}};
  } catch (const std::invalid_argument& x) {
    return {"builtins", "ValueError", {Value(x.what())}};
  } catch (const std::domain_error& x) {
    return {"builtins", "ValueError", {Value(x.what())}};
  } catch (const std::out_of_range& x) {
    return {"builtins", "IndexError", {Value(x.what())}};
  } catch (const std::overflow_error& x) {
    return {"builtins", "OverflowError", {Value(x.what())}};
  } catch (const std::underflow_error& x) {
    return {"builtins", "ArithmeticError", {Value(x.what())}};
  } catch (const std::bad_alloc&) {
    return {"builtins", "MemoryError", {}};
  } catch (const Error& x) {
    return {"builtins", "RuntimeError", {Value(fmt::format("{}: {}", to_string(x.kind()), x.what()))}};
  } catch (const std::exception& x) {
    return {"builtins", "RuntimeError", {Value(x.what())}};
  } catch (...) {
    return {"builtins", "RuntimeError", {Value("unknown C++ exception")}};
  }
}

std::string text_of(const Value& v) { return v.is_str() ? v.as_str() : v.repr(4096); }

}  // namespace

}  // namespace tether::rpc::detail

namespace tether::rpc {
std::string python_type_of(const std::exception_ptr& e) {
  detail::Mapped m = detail::map_exception(e);
  return m.module == "builtins" ? m.type : m.module + "." + m.type;
}
}  // namespace tether::rpc

namespace tether::rpc::detail {
PythonError python_error_of(const std::exception_ptr& e) {
  Mapped m = map_exception(e);
  PythonError out;
  out.type = m.module == "builtins" ? std::move(m.type) : m.module + "." + m.type;
  for (const auto& a : m.args) {
    if (!out.message.empty()) out.message += ", ";
    out.message += text_of(a);
  }
  return out;
}
}  // namespace tether::rpc::detail

namespace tether::rpc::detail {

Value encode_exception(std::exception_ptr e, Generation gen, bool include_traceback, std::string_view context,
                       bool include_local_version) {
  try {
    std::rethrow_exception(e);
  } catch (const StopIteration&) {
    return Value(kExcStopIteration);
  } catch (...) {
  }
  Mapped m = map_exception(e);
  const std::string_view version = !include_local_version  ? std::string_view("<version denied>")
                                   : gen == Generation::k6 ? kVersion6
                                                           : kVersion5;
  std::string tb;
  if (include_traceback) {
    std::string what;
    for (const auto& a : m.args) {
      if (!what.empty()) what += ", ";
      what += text_of(a);
    }
    tb = fmt::format("<C++ exception in tether {} handler>\n{}.{}: {}\n", context, m.module, m.type, what);
  } else {
    tb = "<traceback denied>";
  }
  Value::Tuple args;
  args.reserve(m.args.size());
  for (auto& a : m.args) args.push_back(std::move(a));
  return Value::make_tuple(
      Value::make_tuple(Value(m.module), Value(m.type)), Value::tuple(std::move(args)),
      Value::make_tuple(Value::make_tuple(Value("_remote_version"), Value(std::string(version)))),
      Value(std::move(tb)));
}

std::exception_ptr decode_exception(const Value& body) {
  if (body.is_int() && body.is_int64() && body.as_int64() == kExcStopIteration) {
    return std::make_exception_ptr(StopIteration());
  }
  if (body.is_str()) {
    return std::make_exception_ptr(RemoteException("builtins", "Exception", {Value(body.as_str())}, {}, ""));
  }
  if (!body.is_tuple() || body.as_tuple().size() != 4) {
    return std::make_exception_ptr(ProtocolError("malformed exception reply: " + body.repr(200)));
  }
  const auto& t = body.as_tuple();
  std::string module = "builtins";
  std::string name = "Exception";
  if (t[0].is_tuple() && t[0].as_tuple().size() == 2 && t[0].as_tuple()[0].is_str() &&
      t[0].as_tuple()[1].is_str()) {
    module = t[0].as_tuple()[0].as_str();
    name = t[0].as_tuple()[1].as_str();
  }
  std::vector<Value> args;
  if (t[1].is_tuple()) args = t[1].as_tuple();
  std::vector<std::pair<std::string, Value>> attrs;
  if (t[2].is_tuple()) {
    for (const auto& kv : t[2].as_tuple()) {
      if (kv.is_tuple() && kv.as_tuple().size() == 2 && kv.as_tuple()[0].is_str()) {
        attrs.emplace_back(kv.as_tuple()[0].as_str(), kv.as_tuple()[1]);
      }
    }
  }
  std::string tb = t[3].is_str() ? t[3].as_str() : std::string();
  return std::make_exception_ptr(
      RemoteException(std::move(module), std::move(name), std::move(args), std::move(attrs), std::move(tb)));
}

}  // namespace tether::rpc::detail
