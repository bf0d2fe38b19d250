#include "tether/rpc/class.hpp"

#include <cxxabi.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <memory>

namespace tether {

// --------------------------------------------------------------------------- IteratorObject

bool IteratorObject::has_attr(std::string_view name) const {
  return name == "__iter__" || name == "__next__";
}

Any IteratorObject::get_attr(CallContext&, std::string_view name) {
  if (!has_attr(name)) throw attribute_error(name);
  // Bound methods of the iterator (rarely asked for: Python calls them through CALLATTR).
  std::weak_ptr<IteratorObject> weak = self_;
  const bool is_next = name == "__next__";
  return Any(make_function(std::string(name), [weak, is_next](std::vector<Any> args, Kwargs kwargs) -> Any {
    if (!args.empty() || !kwargs.empty()) throw PyError("TypeError", "expected 0 arguments");
    auto self = weak.lock();
    if (!self) throw PyError("ReferenceError", "the iterator is gone");
    if (is_next) return self->next();
    return Any(ObjectPtr(self));
  }));
}

Any IteratorObject::next() {
  if (!done_) {
    std::optional<Any> item = next_();
    if (item) return std::move(*item);
    done_ = true;
    next_ = nullptr;  // release what the generator holds
  }
  throw StopIteration();
}

namespace {
Task<Any> ready(Any a) { co_return a; }
}  // namespace

Task<Any> IteratorObject::call_attr(CallContext&, std::string_view name, std::vector<Any> args,
                                    Kwargs kwargs) {
  if (!has_attr(name)) throw attribute_error(name);
  if (!args.empty() || !kwargs.empty()) {
    throw PyError("TypeError",
                  fmt::format("{}() takes no arguments ({} given)", name, args.size() + kwargs.size()));
  }
  if (name == "__iter__") return ready(Any(ObjectPtr(self_.lock())));
  return ready(next());
}

ObjectPtr make_iterator(std::function<std::optional<Any>()> next) {
  auto it = std::make_shared<IteratorObject>(std::move(next));
  it->self_ = it;
  return it;
}

ObjectPtr make_iterator(std::vector<Any> items) {
  auto state = std::make_shared<std::pair<std::vector<Any>, std::size_t>>(std::move(items), 0);
  return make_iterator([state]() -> std::optional<Any> {
    if (state->second >= state->first.size()) return std::nullopt;
    return std::move(state->first[state->second++]);
  });
}

// ------------------------------------------------------------------------------ names

bool is_proxy_local_attr(std::string_view name) noexcept {
  // RPyC's LOCAL_ATTRS (netref.py): served by the proxy itself, ignored in INSPECT answers.
  static constexpr std::array<std::string_view, 35> kLocal = {"____conn__",
                                                              "____id_pack__",
                                                              "____refcount__",
                                                              "__class__",
                                                              "__cmp__",
                                                              "__del__",
                                                              "__delattr__",
                                                              "__dir__",
                                                              "__doc__",
                                                              "__getattr__",
                                                              "__getattribute__",
                                                              "__hash__",
                                                              "__instancecheck__",
                                                              "__init__",
                                                              "__metaclass__",
                                                              "__module__",
                                                              "__new__",
                                                              "__reduce__",
                                                              "__reduce_ex__",
                                                              "__repr__",
                                                              "__setattr__",
                                                              "__slots__",
                                                              "__str__",
                                                              "__weakref__",
                                                              "__dict__",
                                                              "__methods__",
                                                              "__exit__",
                                                              "__eq__",
                                                              "__ne__",
                                                              "__lt__",
                                                              "__le__",
                                                              "__gt__",
                                                              "__ge__",
                                                              "__array_struct__",
                                                              "__array_interface__"};
  return std::find(kLocal.begin(), kLocal.end(), name) != kLocal.end();
}

namespace detail {

namespace {
std::string demangled(const std::type_info& type) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name(abi::__cxa_demangle(type.name(), nullptr, nullptr, &status), std::free);
  return status == 0 && name ? std::string(name.get()) : std::string(type.name());
}
}  // namespace

void throw_unbound_class(const std::type_info& type) {
  const std::string shown = demangled(type);
  throw UsageError(fmt::format(
      "tether: the C++ type '{}' has no tether::Class binding in this connection's classes (define it with "
      "Service::define_class<{}>(\"Name\"), or in ConnectionOptions::classes, before passing it to a peer)",
      shown, shown));
}

std::string cpp_class_name(const std::type_info& type) {
  const std::string full = demangled(type);
  // The part after the last "::" outside template arguments.
  int depth = 0;
  std::size_t start = 0;
  for (std::size_t i = 0; i + 1 < full.size(); ++i) {
    if (full[i] == '<') ++depth;
    if (full[i] == '>') --depth;
    if (depth == 0 && full[i] == ':' && full[i + 1] == ':') start = i + 2;
  }
  return full.substr(start);
}

ClassEntryBase::~ClassEntryBase() = default;

bool is_pending_instance(const Object& obj) noexcept { return typeid(obj) == typeid(PendingInstance); }

std::string_view member_display_name(std::string_view key) noexcept {
  if (key.starts_with("exposed_")) key.remove_prefix(8);
  return key;
}

void property_error(const std::string& where, const PyError& e) {
  std::string msg = e.args().empty() ? std::string(e.what())
                                     : (e.args()[0].is_str() ? e.args()[0].as_str() : e.args()[0].repr(200));
  throw PyError(e.module(), e.type_name(), {brine::Value(where + ": " + msg)});
}

std::vector<std::string> advertised_dunders(const std::vector<std::string>& keys) {
  std::vector<std::string> out;
  for (const auto& k : keys) {
    if (k.starts_with("__") && k.ends_with("__") && !is_proxy_local_attr(k)) out.push_back(k);
  }
  return out;
}

std::vector<std::string> visible_names(const std::vector<std::string>& keys) {
  std::vector<std::string> out;
  for (const auto& k : keys) {
    if (k.starts_with("exposed_")) out.emplace_back(member_display_name(k));
    out.push_back(k);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace detail

// ---------------------------------------------------------------------------- ClassSet

detail::ClassEntryBase& ClassSet::entry_for(const std::type_info& type) const {
  auto it = entries_.find(std::type_index(type));
  if (it == entries_.end()) detail::throw_unbound_class(type);
  return *it->second;
}

ObjectPtr ClassSet::bind(const ObjectPtr& obj) const {
  if (!obj || !detail::is_pending_instance(*obj)) return obj;
  const auto& pending = static_cast<const detail::PendingInstance&>(*obj);
  return entry_for(pending.type()).wrap_erased(pending.ptr());
}

}  // namespace tether
