#include "tether/rpc/bind.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "tether/base/log.hpp"

namespace tether::detail {

namespace {

std::string quoted(const std::string& name) { return "'" + name + "'"; }

/// Python 3.11's list of missing names: 'a' / 'a' and 'b' / 'a', 'b', and 'c'.
std::string name_list(const std::vector<std::string>& names) {
  if (names.size() == 1) return quoted(names[0]);
  if (names.size() == 2) return quoted(names[0]) + " and " + quoted(names[1]);
  std::string out;
  for (std::size_t i = 0; i + 1 < names.size(); ++i) out += quoted(names[i]) + ", ";
  return out + "and " + quoted(names.back());
}

}  // namespace

std::string SignatureInfo::text() const {
  std::string out = name + "(";
  for (std::size_t i = 0; i < types.size(); ++i) {
    if (i) out += ", ";
    if (has_names) out += names[i] + ": ";
    out += types[i]();
  }
  out += ") -> ";
  out += result ? result() : std::string("None");
  return out;
}

std::string compose_doc(const SignatureInfo& info, std::string_view text) {
  std::string sig = info.text();
  const auto paren = sig.find('(');
  const auto dot = sig.rfind('.', paren);
  if (dot != std::string::npos) sig.erase(0, dot + 1);  // "Store.get(...)" -> "get(...)"
  if (text.empty()) return sig;
  return sig + "\n\n" + std::string(text);
}

void apply_names(SignatureInfo& info, ArgNames names) {
  const std::size_t n = info.types.size();
  if (names.names.empty()) {
    info.names.clear();
    for (std::size_t i = 0; i < n; ++i) info.names.push_back(fmt::format("arg{}", i + 1));
    info.has_names = false;
    return;
  }
  if (names.names.size() != n) {
    throw UsageError(
        fmt::format("{}: {} parameter names given for {} parameters", info.name, names.names.size(), n));
  }
  info.names = std::move(names.names);
  info.has_names = true;
}

std::vector<Any> merge_arguments(const SignatureInfo& info, std::vector<Any>&& args, Kwargs&& kwargs) {
  const std::size_t n = info.names.size();
  if (args.size() > n) {
    const auto min = static_cast<std::size_t>(std::count(info.required.begin(), info.required.end(), true));
    std::string takes = min == n ? fmt::format("{} positional argument{}", n, n == 1 ? "" : "s")
                                 : fmt::format("from {} to {} positional arguments", min, n);
    throw PyError("TypeError", fmt::format("{}() takes {} but {} {} given", info.name, takes, args.size(),
                                           args.size() == 1 ? "was" : "were"));
  }
  if (kwargs.empty() && args.size() == n) return std::move(args);  // the common case
  std::vector<Any> slots(n);
  std::vector<bool> filled(n, false);
  for (std::size_t i = 0; i < args.size(); ++i) {
    slots[i] = std::move(args[i]);
    filled[i] = true;
  }
  for (auto& [key, value] : kwargs) {
    std::size_t idx = n;
    if (info.has_names) {
      auto it = std::find(info.names.begin(), info.names.end(), key);
      if (it != info.names.end()) idx = static_cast<std::size_t>(it - info.names.begin());
    }
    if (idx == n) {
      throw PyError("TypeError", fmt::format("{}() got an unexpected keyword argument '{}'", info.name, key));
    }
    if (filled[idx]) {
      throw PyError("TypeError", fmt::format("{}() got multiple values for argument '{}'", info.name, key));
    }
    slots[idx] = std::move(value);
    filled[idx] = true;
  }
  std::vector<std::string> missing;
  for (std::size_t i = 0; i < n; ++i) {
    if (!filled[i] && info.required[i]) missing.push_back(info.names[i]);
  }
  if (!missing.empty()) {
    throw PyError("TypeError",
                  fmt::format("{}() missing {} required positional argument{}: {}", info.name, missing.size(),
                              missing.size() == 1 ? "" : "s", name_list(missing)));
  }
  return slots;  // omitted optional parameters stay None
}

void argument_error(const SignatureInfo& info, std::size_t index, const PyError& e) {
  if (e.module() != "builtins" ||
      (e.type_name() != "TypeError" && e.type_name() != "OverflowError" && e.type_name() != "ValueError")) {
    throw e;
  }
  std::string detail;
  if (!e.args().empty()) {
    detail = e.args()[0].is_str() ? e.args()[0].as_str() : e.args()[0].repr(200);
  } else {
    detail = e.what();
  }
  throw PyError(e.module(), e.type_name(),
                {brine::Value(fmt::format("{}: argument {}: {}", info.text(), index + 1, detail))});
}

void plain_value_error(const Any& got) { conversion_error("a plain value", got); }

void throw_nested_callback_call() {
  throw UsageError(
      "a peer's callable (std::function) was called on the loop thread while the loop runs, outside a "
      "fiber: waiting for its reply there would nest the loop. Call it from the binding that received it "
      "as a parameter (that binding runs on a fiber), from a blocking binding (expose_blocking), or take "
      "a Netref and co_await its call in a coroutine");
}

RemoteCallableState::~RemoteCallableState() {
  if (loop && ref.valid() && !loop->in_loop_thread()) {
    // A proxy is released on its loop thread (its DEL is queued there).
    loop->post([r = std::move(ref)]() mutable { r = Netref(); });
  }
}

namespace {
void destroy_detached(void*, std::coroutine_handle<> self, std::exception_ptr error) noexcept {
  if (error) {
    try {
      std::rethrow_exception(error);
    } catch (...) {
      TETHER_LOG_WARN("detached task failed: {}", describe_current_exception());
    }
  }
  self.destroy();
}
}  // namespace

void spawn_detached(EventLoop& loop, Task<void> task) {
  auto h = start_runner(std::move(task), RunnerHook{&destroy_detached, nullptr});
  loop.schedule(h);
}

}  // namespace tether::detail
