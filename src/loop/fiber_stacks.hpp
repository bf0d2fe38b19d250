#pragma once
// Private: the stacks of one loop's fibers (fiber.cpp), mapped with a guard page and kept for
// reuse (a few), so that a binding run on a fiber does not map and unmap a stack per call.

#include <cstddef>
#include <vector>

namespace tether::detail {

class FiberStacks {
 public:
  struct Stack {
    void* base;        // the mapping (guard page first)
    std::size_t mapped;
    void* bottom;      // the usable part, above the guard page
    std::size_t usable;
  };
#if defined(__SANITIZE_ADDRESS__)
  static constexpr std::size_t kDefaultSize = 1024 * 1024;  // instrumented frames are larger
#else
  static constexpr std::size_t kDefaultSize = 256 * 1024;
#endif
  /// Stacks kept for reuse, at most.
  static constexpr std::size_t kKeep = 16;

  FiberStacks() = default;
  ~FiberStacks();
  FiberStacks(const FiberStacks&) = delete;
  FiberStacks& operator=(const FiberStacks&) = delete;

  Stack take();
  void give_back(Stack s) noexcept;
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  void set_size(std::size_t bytes);
  /// Stacks in use (fibers alive).
  [[nodiscard]] std::size_t live() const noexcept { return live_; }

 private:
  std::size_t size_ = kDefaultSize;
  std::size_t live_ = 0;
  std::vector<Stack> free_;
};

}  // namespace tether::detail
