#pragma once
/// \file Bytes: an owning, cheaply movable byte string.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "tether/base/export.hpp"

namespace tether {

/// An owning sequence of bytes. Moving is O(1); copying copies. Small values live inline.
/// Bytes is a value type: it has no loop affinity and may cross threads freely.
///
/// It is a contiguous range of std::uint8_t (pointer iterators, data()/size()): standard
/// algorithms, std::ranges and std::span<const std::uint8_t>(b) work on it directly, and
/// std::string(b.begin(), b.end()) copies it (view()/str() do the same without a loop).
class TETHER_API Bytes {
 public:
  using value_type = std::uint8_t;
  using size_type = std::size_t;
  using difference_type = std::ptrdiff_t;
  using reference = std::uint8_t&;
  using const_reference = const std::uint8_t&;
  using pointer = std::uint8_t*;
  using const_pointer = const std::uint8_t*;
  using iterator = std::uint8_t*;
  using const_iterator = const std::uint8_t*;

  Bytes() = default;
  explicit Bytes(std::string s) noexcept : data_(std::move(s)) {}
  Bytes(const void* p, std::size_t n) : data_(static_cast<const char*>(p), n) {}
  explicit Bytes(std::string_view s) : data_(s) {}
  explicit Bytes(std::span<const std::uint8_t> s)
      : data_(reinterpret_cast<const char*>(s.data()), s.size()) {}
  /// n bytes of value `fill`.
  static Bytes filled(std::size_t n, std::uint8_t fill = 0) {
    return Bytes(std::string(n, static_cast<char>(fill)));
  }
  static Bytes from(std::string_view s) { return Bytes(s); }

  [[nodiscard]] std::size_t size() const noexcept { return data_.size(); }
  [[nodiscard]] bool empty() const noexcept { return data_.empty(); }
  [[nodiscard]] const std::uint8_t* data() const noexcept {
    return reinterpret_cast<const std::uint8_t*>(data_.data());
  }
  [[nodiscard]] std::uint8_t* data() noexcept { return reinterpret_cast<std::uint8_t*>(data_.data()); }
  [[nodiscard]] const char* chars() const noexcept { return data_.data(); }
  [[nodiscard]] std::string_view view() const noexcept { return data_; }
  [[nodiscard]] std::span<const std::uint8_t> span() const noexcept { return {data(), size()}; }
  [[nodiscard]] const std::string& str() const& noexcept { return data_; }
  /// Releases the storage as a std::string without copying.
  [[nodiscard]] std::string release() && noexcept { return std::move(data_); }
  std::uint8_t operator[](std::size_t i) const noexcept { return data()[i]; }

  [[nodiscard]] iterator begin() noexcept { return data(); }
  [[nodiscard]] iterator end() noexcept { return data() + size(); }
  [[nodiscard]] const_iterator begin() const noexcept { return data(); }
  [[nodiscard]] const_iterator end() const noexcept { return data() + size(); }
  [[nodiscard]] const_iterator cbegin() const noexcept { return begin(); }
  [[nodiscard]] const_iterator cend() const noexcept { return end(); }

  void append(const void* p, std::size_t n) { data_.append(static_cast<const char*>(p), n); }
  void append(std::string_view s) { data_.append(s); }
  void resize(std::size_t n) { data_.resize(n); }
  void reserve(std::size_t n) { data_.reserve(n); }
  void clear() noexcept { data_.clear(); }

  friend bool operator==(const Bytes& a, const Bytes& b) noexcept { return a.data_ == b.data_; }
  friend auto operator<=>(const Bytes& a, const Bytes& b) noexcept { return a.data_ <=> b.data_; }

 private:
  std::string data_;
};

}  // namespace tether
