#include "py_objects.hpp"

#include <fmt/format.h>

#include "tether/rpc/py_error.hpp"

namespace tether::tools {

namespace {

/// An iterator over a snapshot of items ("builtins.list_iterator"). iter() of it returns an
/// iterator sharing its position (Python's `iter(it) is it`, up to identity).
class PyIterator : public Object {
 public:
  struct State {
    std::vector<Any> items;
    std::size_t next = 0;
  };
  explicit PyIterator(std::shared_ptr<State> st) : st_(std::move(st)) {}
  [[nodiscard]] std::string type_name() const override { return "builtins.list_iterator"; }
  [[nodiscard]] bool has_attr(std::string_view name) const override {
    return name == "__next__" || name == "__iter__" || name == "__length_hint__";
  }
  Task<Any> call_attr(CallContext&, std::string_view name, std::vector<Any>, Kwargs) override;
  [[nodiscard]] std::vector<std::string> inspect_names() const override {
    return {"__iter__", "__length_hint__", "__next__"};
  }

 private:
  std::shared_ptr<State> st_;
};

bool same_key(const Any& a, const Any& b) {
  if (!a.is_value() || !b.is_value()) {
    if (a.is_local() && b.is_local()) return a.object() == b.object();
    return false;
  }
  return a.value() == b.value();
}

/// The outcome of a synchronous operation as a Task (the body runs eagerly, before the Task is
/// returned, so that no view argument is read after the caller's frame has moved on).
Task<Any> finish(Any a, std::exception_ptr e) {
  if (e) std::rethrow_exception(e);
  co_return a;
}

}  // namespace

Task<Any> PyIterator::call_attr(CallContext&, std::string_view name, std::vector<Any>, Kwargs) {
  if (name == "__iter__") return finish(Any(ObjectPtr(std::make_shared<PyIterator>(st_))), nullptr);
  if (name == "__length_hint__")
    return finish(Any(static_cast<std::int64_t>(st_->items.size() - st_->next)), nullptr);
  if (st_->next >= st_->items.size()) return finish(Any(), std::make_exception_ptr(tether::StopIteration()));
  return finish(st_->items[st_->next++], nullptr);
}

std::string PyContainer::type_name() const {
  switch (kind_) {
    case Kind::kList: return "builtins.list";
    case Kind::kDict: return "builtins.dict";
    case Kind::kSet: return "builtins.set";
  }
  return "builtins.object";
}

bool PyContainer::has_attr(std::string_view name) const {
  if (name == "__len__" || name == "__iter__" || name == "__contains__") return true;
  if (name == "__getitem__") return kind_ != Kind::kSet;
  if (kind_ == Kind::kDict) {
    return name == "exposed_keys" || name == "exposed_values" || name == "exposed_items" ||
           name == "exposed_get";
  }
  return false;
}

std::vector<std::string> PyContainer::attr_names() const {
  std::vector<std::string> names{"__contains__", "__iter__", "__len__"};
  if (kind_ != Kind::kSet) names.push_back("__getitem__");
  if (kind_ == Kind::kDict) {
    for (const char* n : {"get", "items", "keys", "values"}) names.emplace_back(n);
  }
  return names;
}

std::vector<std::string> PyContainer::inspect_names() const { return attr_names(); }

Any PyContainer::get_attr(CallContext&, std::string_view name) {
  if (!has_attr(name)) throw attribute_error(name);
  // A bound method: a callable that forwards to dispatch() (the object outlives the call
  // through the shared_ptr the export table holds; the method keeps its own copy of the items).
  auto self = std::make_shared<PyContainer>(kind_, items_);
  std::string method(name);
  return make_function(method, [self, method](std::vector<Any> args, Kwargs) {
    return self->dispatch(method, std::move(args));
  });
}

Task<Any> PyContainer::call_attr(CallContext&, std::string_view name, std::vector<Any> args, Kwargs kwargs) {
  try {
    if (!kwargs.empty()) throw PyError("TypeError", fmt::format("{}() takes no keyword arguments", name));
    return finish(dispatch(name, std::move(args)), nullptr);
  } catch (...) {
    return finish(Any(), std::current_exception());
  }
}

std::vector<Any> PyContainer::iteration_items() const {
  if (kind_ != Kind::kDict) return items_;
  std::vector<Any> keys;
  for (std::size_t i = 0; i < items_.size(); i += 2) keys.push_back(items_[i]);
  return keys;
}

Any PyContainer::dispatch(std::string_view name, std::vector<Any> args) {
  auto need = [&](std::size_t lo, std::size_t hi) {
    if (args.size() < lo || args.size() > hi) {
      throw PyError("TypeError", fmt::format("{}() takes {} argument{} ({} given)", name,
                                             lo == hi ? std::to_string(lo) : fmt::format("{} to {}", lo, hi),
                                             hi == 1 ? "" : "s", args.size()));
    }
  };
  if (name == "__len__") {
    need(0, 0);
    return Any(static_cast<std::int64_t>(size()));
  }
  if (name == "__iter__") {
    need(0, 0);
    auto st = std::make_shared<PyIterator::State>();
    st->items = iteration_items();
    return Any(ObjectPtr(std::make_shared<PyIterator>(std::move(st))));
  }
  if (name == "__contains__") {
    need(1, 1);
    for (const auto& k : iteration_items()) {
      if (same_key(k, args[0])) return Any(true);
    }
    return Any(false);
  }
  if (name == "__getitem__" && kind_ == Kind::kList) {
    need(1, 1);
    if (!args[0].is_value() || !args[0].value().is_int() || args[0].value().is_bool()) {
      throw PyError("TypeError", "list indices must be integers");
    }
    if (!args[0].value().is_int64()) throw PyError("IndexError", "list index out of range");
    std::int64_t i = args[0].value().as_int64();
    const auto n = static_cast<std::int64_t>(items_.size());
    if (i < 0) i += n;
    if (i < 0 || i >= n) throw PyError("IndexError", "list index out of range");
    return items_[static_cast<std::size_t>(i)];
  }
  if (kind_ == Kind::kDict) {
    if (name == "__getitem__" || name == "exposed_get" || name == "get") {
      const bool get = name != "__getitem__";
      need(1, get ? 2 : 1);
      for (std::size_t i = 0; i < items_.size(); i += 2) {
        if (same_key(items_[i], args[0])) return items_[i + 1];
      }
      if (get) return args.size() > 1 ? args[1] : Any();
      throw PyError("KeyError", local_repr(args[0]));
    }
    if (name == "exposed_keys" || name == "keys") {
      need(0, 0);
      return Any(ObjectPtr(std::make_shared<PyContainer>(Kind::kList, iteration_items())));
    }
    if (name == "exposed_values" || name == "values") {
      need(0, 0);
      std::vector<Any> v;
      for (std::size_t i = 1; i < items_.size(); i += 2) v.push_back(items_[i]);
      return Any(ObjectPtr(std::make_shared<PyContainer>(Kind::kList, std::move(v))));
    }
    if (name == "exposed_items" || name == "items") {
      need(0, 0);
      std::vector<Any> v;
      for (std::size_t i = 0; i + 1 < items_.size(); i += 2)
        v.push_back(Any::tuple(make_args(items_[i], items_[i + 1])));
      return Any(ObjectPtr(std::make_shared<PyContainer>(Kind::kList, std::move(v))));
    }
  }
  throw attribute_error(name);
}

std::string PyContainer::repr() const {
  std::string out;
  switch (kind_) {
    case Kind::kList:
      out = "[";
      for (std::size_t i = 0; i < items_.size(); ++i) out += (i ? ", " : "") + local_repr(items_[i]);
      return out + "]";
    case Kind::kSet:
      if (items_.empty()) return "set()";
      out = "{";
      for (std::size_t i = 0; i < items_.size(); ++i) out += (i ? ", " : "") + local_repr(items_[i]);
      return out + "}";
    case Kind::kDict:
      out = "{";
      for (std::size_t i = 0; i + 1 < items_.size(); i += 2) {
        out += (i ? ", " : "") + local_repr(items_[i]) + ": " + local_repr(items_[i + 1]);
      }
      return out + "}";
  }
  return out;
}

std::string local_repr(const Any& a) {
  switch (a.kind()) {
    case Any::Kind::kValue: return a.value().repr();
    case Any::Kind::kLocal: return a.object()->repr();
    case Any::Kind::kRemote: return "<netref " + a.netref().type_name() + ">";
    case Any::Kind::kTuple: {
      auto items = a.items();
      std::string out = "(";
      for (std::size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + local_repr(items[i]);
      if (items.size() == 1) out += ",";
      return out + ")";
    }
  }
  return a.repr();
}

Any literal_to_any(const Literal& lit) {
  std::vector<Any> items;
  items.reserve(lit.items.size());
  for (const auto& i : lit.items) items.push_back(literal_to_any(i));
  switch (lit.kind) {
    case Literal::Kind::kValue: return Any(lit.value);
    case Literal::Kind::kTuple: return Any::tuple(std::move(items));
    case Literal::Kind::kList:
      return Any(ObjectPtr(std::make_shared<PyContainer>(PyContainer::Kind::kList, std::move(items))));
    case Literal::Kind::kDict:
      return Any(ObjectPtr(std::make_shared<PyContainer>(PyContainer::Kind::kDict, std::move(items))));
    case Literal::Kind::kSet:
      return Any(ObjectPtr(std::make_shared<PyContainer>(PyContainer::Kind::kSet, std::move(items))));
  }
  return Any();
}

}  // namespace tether::tools
