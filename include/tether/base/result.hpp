#pragma once
/// \file Result<T, E>: a value or an error, shaped like C++23's std::expected (which g++ 12
/// lacks in C++20 mode). Used for outcomes a caller is expected to branch on.

#include <cassert>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

#include "tether/base/error.hpp"

namespace tether {

/// Wraps an error value to construct a failed Result (std::unexpected's role).
template <class E>
class Unexpected {
 public:
  explicit Unexpected(E e) : error_(std::move(e)) {}
  [[nodiscard]] const E& error() const& noexcept { return error_; }
  [[nodiscard]] E&& error() && noexcept { return std::move(error_); }

 private:
  E error_;
};

template <class E>
Unexpected(E) -> Unexpected<E>;

/// Thrown by Result::value() when the Result holds an error.
class TETHER_API BadResultAccess : public Error {
 public:
  explicit BadResultAccess(const std::string& what) : Error(ErrorKind::kUsage, what) {}
};

namespace detail {
template <class E>
[[noreturn]] void throw_bad_result(const E& e) {
  if constexpr (std::is_same_v<E, std::error_code>) {
    throw IoError(e.value(), "Result holds an error: " + e.message());
  } else {
    (void)e;
    throw BadResultAccess("Result holds an error");
  }
}
}  // namespace detail

template <class T, class E = std::error_code>
class [[nodiscard]] Result {
 public:
  using value_type = T;
  using error_type = E;

  template <class U = T, std::enable_if_t<std::is_constructible_v<T, U&&>, int> = 0>
  Result(U&& v) : storage_(std::in_place_index<0>, std::forward<U>(v)) {}  // NOLINT implicit
  template <class G>
  Result(Unexpected<G> u) : storage_(std::in_place_index<1>, std::move(u).error()) {}  // NOLINT

  [[nodiscard]] bool has_value() const noexcept { return storage_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  T& value() & {
    if (!has_value()) detail::throw_bad_result(error());
    return std::get<0>(storage_);
  }
  const T& value() const& {
    if (!has_value()) detail::throw_bad_result(error());
    return std::get<0>(storage_);
  }
  T&& value() && {
    if (!has_value()) detail::throw_bad_result(error());
    return std::get<0>(std::move(storage_));
  }
  template <class U>
  T value_or(U&& fallback) const& {
    return has_value() ? std::get<0>(storage_) : static_cast<T>(std::forward<U>(fallback));
  }
  const E& error() const& noexcept {
    assert(!has_value());
    return std::get<1>(storage_);
  }
  T& operator*() & noexcept { return std::get<0>(storage_); }
  const T& operator*() const& noexcept { return std::get<0>(storage_); }
  T* operator->() noexcept { return &std::get<0>(storage_); }
  const T* operator->() const noexcept { return &std::get<0>(storage_); }

 private:
  std::variant<T, E> storage_;
};

template <class E>
class [[nodiscard]] Result<void, E> {
 public:
  Result() = default;
  template <class G>
  Result(Unexpected<G> u) : error_(std::move(u).error()), ok_(false) {}  // NOLINT implicit

  [[nodiscard]] bool has_value() const noexcept { return ok_; }
  explicit operator bool() const noexcept { return ok_; }
  void value() const {
    if (!ok_) detail::throw_bad_result(error_);
  }
  const E& error() const& noexcept {
    assert(!ok_);
    return error_;
  }

 private:
  E error_{};
  bool ok_ = true;
};

/// Convenience: a failed Result<T, std::error_code> from an errno value.
inline Unexpected<std::error_code> errno_error(int err) {
  return Unexpected<std::error_code>(std::error_code(err, std::generic_category()));
}

}  // namespace tether
