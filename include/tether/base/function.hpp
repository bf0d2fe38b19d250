#pragma once
/// \file UniqueFunction: a move-only std::function (C++23's move_only_function is not in
/// g++ 12's C++20 mode). Holds callables that own resources, e.g. a captured unique_ptr.
///
/// Type erasure is by two plain function pointers (call, destroy) rather than a virtual base:
/// one indirect call either way, no RTTI, and no UBSan vptr probe on every first call of a new
/// callable type (that probe needs free file descriptors, which a process at its RLIMIT_NOFILE
/// does not have).

#include <cstddef>
#include <type_traits>
#include <utility>

namespace tether {

template <class Sig>
class UniqueFunction;

template <class R, class... A>
class UniqueFunction<R(A...)> {
 public:
  UniqueFunction() noexcept = default;
  UniqueFunction(std::nullptr_t) noexcept {}  // NOLINT(google-explicit-constructor)
  template <class F, std::enable_if_t<!std::is_same_v<std::decay_t<F>, UniqueFunction> &&
                                          std::is_invocable_r_v<R, F&, A...>,
                                      int> = 0>
  UniqueFunction(F&& f)  // NOLINT(google-explicit-constructor)
      : obj_(new std::decay_t<F>(std::forward<F>(f))),
        call_(&call_as<std::decay_t<F>>),
        destroy_(&destroy_as<std::decay_t<F>>) {}
  UniqueFunction(UniqueFunction&& o) noexcept
      : obj_(std::exchange(o.obj_, nullptr)),
        call_(std::exchange(o.call_, nullptr)),
        destroy_(std::exchange(o.destroy_, nullptr)) {}
  UniqueFunction& operator=(UniqueFunction&& o) noexcept {
    if (this != &o) {
      UniqueFunction old(std::move(*this));  // destroyed after the move, even if it throws
      obj_ = std::exchange(o.obj_, nullptr);
      call_ = std::exchange(o.call_, nullptr);
      destroy_ = std::exchange(o.destroy_, nullptr);
    }
    return *this;
  }
  UniqueFunction& operator=(std::nullptr_t) noexcept {
    UniqueFunction old(std::move(*this));
    return *this;
  }
  UniqueFunction(const UniqueFunction&) = delete;
  UniqueFunction& operator=(const UniqueFunction&) = delete;
  ~UniqueFunction() {
    if (obj_ != nullptr) destroy_(obj_);
  }

  R operator()(A... args) { return call_(obj_, std::forward<A>(args)...); }
  explicit operator bool() const noexcept { return obj_ != nullptr; }

 private:
  template <class F>
  static R call_as(void* f, A&&... args) {
    if constexpr (std::is_void_v<R>) {
      (*static_cast<F*>(f))(std::forward<A>(args)...);
    } else {
      return (*static_cast<F*>(f))(std::forward<A>(args)...);
    }
  }
  template <class F>
  static void destroy_as(void* f) noexcept {
    delete static_cast<F*>(f);
  }

  void* obj_ = nullptr;
  R (*call_)(void*, A&&...) = nullptr;
  void (*destroy_)(void*) noexcept = nullptr;
};

}  // namespace tether
