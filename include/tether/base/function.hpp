#pragma once
/// \file UniqueFunction: a move-only std::function (C++23's move_only_function is not in
/// g++ 12's C++20 mode). Holds callables that own resources, e.g. a captured unique_ptr.

#include <memory>
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
      : impl_(std::make_unique<Impl<std::decay_t<F>>>(std::forward<F>(f))) {}
  UniqueFunction(UniqueFunction&&) noexcept = default;
  UniqueFunction& operator=(UniqueFunction&&) noexcept = default;

  R operator()(A... args) { return impl_->call(std::forward<A>(args)...); }
  explicit operator bool() const noexcept { return impl_ != nullptr; }

 private:
  struct Base {
    virtual ~Base() = default;
    virtual R call(A... args) = 0;
  };
  template <class F>
  struct Impl final : Base {
    explicit Impl(F&& f) : fn(std::move(f)) {}
    explicit Impl(const F& f) : fn(f) {}
    R call(A... args) override { return fn(std::forward<A>(args)...); }
    F fn;
  };
  std::unique_ptr<Base> impl_;
};

}  // namespace tether
