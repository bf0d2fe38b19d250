#include "tether/loop/fiber.hpp"

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cxxabi.h>
#include <new>
#include <vector>

#include "loop/fiber_stacks.hpp"
#include "tether/base/error.hpp"
#include "tether/base/log.hpp"
#include "tether/loop/event_loop.hpp"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define TETHER_FIBER_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define TETHER_FIBER_TSAN 1
#endif

namespace tether {
namespace detail {

// The C++ runtime keeps, per thread, the exceptions being handled (a catch block that is
// running) and the count of those thrown and not yet caught. Code on a fiber may switch to
// the loop inside a catch block; the loop's own handlers must not see the fiber's entries, and
// the other way round. So each side keeps its own and they are swapped at every switch (as
// folly's fibers do). The layout is the Itanium C++ ABI's __cxa_eh_globals on x86-64 and
// AArch64.
struct EhGlobals {
  void* caught = nullptr;
  unsigned int uncaught = 0;
};

namespace {

EhGlobals* eh_globals() noexcept { return reinterpret_cast<EhGlobals*>(abi::__cxa_get_globals()); }

thread_local Fiber* t_current_fiber = nullptr;

std::size_t page_size() noexcept {
  static const std::size_t n = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return n;
}

}  // namespace

// ---------------------------------------------------------------------------------- stacks

FiberStacks::~FiberStacks() {
  for (Stack& s : free_) ::munmap(s.base, s.mapped);
  if (live_ != 0) {
    // Their functions never returned (what they waited for was never delivered): the stacks
    // and whatever lives on them are leaked rather than freed under running code.
    TETHER_LOG_ERROR("EventLoop destroyed with {} fiber(s) still waiting; their stacks are leaked", live_);
  }
}

FiberStacks::Stack FiberStacks::take() {
  ++live_;
  if (!free_.empty()) {
    Stack s = free_.back();
    free_.pop_back();
    return s;
  }
  const std::size_t guard = page_size();
  const std::size_t usable = (size_ + guard - 1) / guard * guard;
  const std::size_t mapped = usable + guard;
  void* p = ::mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
                   -1, 0);
  if (p == MAP_FAILED) {
    --live_;
    throw std::bad_alloc();
  }
  // The lowest page is the guard: a stack overflow faults there instead of writing below.
  if (::mprotect(p, guard, PROT_NONE) != 0) {
    ::munmap(p, mapped);
    --live_;
    throw std::bad_alloc();
  }
  return Stack{p, mapped, static_cast<char*>(p) + guard, usable};
}

void FiberStacks::give_back(Stack s) noexcept {
  --live_;
  if (free_.size() < kKeep && s.usable == (size_ + page_size() - 1) / page_size() * page_size()) {
    try {
      free_.push_back(s);
      return;
    } catch (...) {
    }
  }
  ::munmap(s.base, s.mapped);
}

void FiberStacks::set_size(std::size_t bytes) {
  if (bytes < 16 * 1024) throw UsageError("fiber stack size below 16 KiB");
  size_ = bytes;
  for (Stack& s : free_) ::munmap(s.base, s.mapped);
  free_.clear();
}

// ---------------------------------------------------------------------------------- Fiber

class Fiber {
 public:
  Fiber(EventLoop& loop, FiberStacks& stacks, FiberCall* call, UniqueFunction<void()> fn)
      : loop_(loop), stacks_(stacks), stack_(stacks.take()), call_(call), fn_(std::move(fn)) {
    if (::getcontext(&self_) != 0) {
      stacks_.give_back(stack_);
      throw IoError(errno, "getcontext");
    }
    self_.uc_stack.ss_sp = stack_.bottom;
    self_.uc_stack.ss_size = stack_.usable;
    self_.uc_link = nullptr;
    const auto bits = reinterpret_cast<std::uintptr_t>(this);
    ::makecontext(&self_, reinterpret_cast<void (*)()>(&Fiber::entry), 2, static_cast<unsigned>(bits >> 32),
                  static_cast<unsigned>(bits & 0xffffffffu));
#ifdef TETHER_FIBER_TSAN
    tsan_fiber_ = __tsan_create_fiber(0);
#endif
  }
  ~Fiber() {
#ifdef TETHER_FIBER_TSAN
    __tsan_destroy_fiber(tsan_fiber_);
#endif
    stacks_.give_back(stack_);
  }
  Fiber(const Fiber&) = delete;
  Fiber& operator=(const Fiber&) = delete;

  EventLoop& loop() noexcept { return loop_; }
  [[nodiscard]] bool finished() const noexcept { return finished_; }

  /// From the loop's side: runs the fiber until it suspends or finishes.
  void resume() noexcept {
    Fiber* outer = t_current_fiber;
    EhGlobals* g = eh_globals();
    const EhGlobals mine = *g;
    *g = eh_;
    t_current_fiber = this;
#ifdef TETHER_FIBER_TSAN
    void* tsan_outer = __tsan_get_current_fiber();
    tsan_outer_ = tsan_outer;
    __tsan_switch_to_fiber(tsan_fiber_, 0);
#endif
#ifdef TETHER_FIBER_ASAN
    void* fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, stack_.bottom, stack_.usable);
#endif
    ::swapcontext(&outer_, &self_);
#ifdef TETHER_FIBER_ASAN
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
    t_current_fiber = outer;
    eh_ = *g;
    *g = mine;
  }

  /// From inside: back to whoever resumed it.
  void suspend() noexcept {
#ifdef TETHER_FIBER_TSAN
    __tsan_switch_to_fiber(tsan_outer_, 0);
#endif
#ifdef TETHER_FIBER_ASAN
    __sanitizer_start_switch_fiber(&fake_, outer_bottom_, outer_size_);
#endif
    ::swapcontext(&self_, &outer_);
#ifdef TETHER_FIBER_ASAN
    __sanitizer_finish_switch_fiber(fake_, &outer_bottom_, &outer_size_);
#endif
  }

  /// Resumes it from the ready queue (loop thread), and ends it there once finished.
  void wake() {
    loop_.call_soon([this]() { step(); });
  }

  /// resume(), then, if the function returned, hands the awaiting coroutine back to the loop
  /// and frees the fiber.
  void step() noexcept {
    resume();
    if (!finished_) return;
    if (call_) {
      call_->fiber_ = nullptr;
      if (call_->waiter_) {
        try {
          loop_.schedule(call_->waiter_);
          call_->woken_ = true;  // queued: if its frame goes first, ~FiberCall unschedules it
        } catch (...) {
          TETHER_LOG_ERROR("fiber: cannot resume the coroutine that awaited it: {}", describe_current_exception());
        }
      }
    }
    delete this;
  }

  void detach() noexcept { call_ = nullptr; }

 private:
  static void entry(unsigned hi, unsigned lo) noexcept {
    auto* self = reinterpret_cast<Fiber*>((static_cast<std::uintptr_t>(hi) << 32) | lo);
#ifdef TETHER_FIBER_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &self->outer_bottom_, &self->outer_size_);
#endif
    try {
      self->fn_();
    } catch (...) {
      TETHER_LOG_ERROR("exception escaped a fiber's function: {}", describe_current_exception());
    }
    self->fn_ = nullptr;  // what it owns is released on the fiber's own stack, while it is there
    self->finished_ = true;
#ifdef TETHER_FIBER_TSAN
    __tsan_switch_to_fiber(self->tsan_outer_, 0);
#endif
#ifdef TETHER_FIBER_ASAN
    __sanitizer_start_switch_fiber(nullptr, self->outer_bottom_, self->outer_size_);
#endif
    ::setcontext(&self->outer_);
    std::terminate();  // setcontext does not return
  }

  EventLoop& loop_;
  FiberStacks& stacks_;
  FiberStacks::Stack stack_;
  FiberCall* call_;
  UniqueFunction<void()> fn_;
  ucontext_t self_{};
  ucontext_t outer_{};
  EhGlobals eh_{};
  bool finished_ = false;
#ifdef TETHER_FIBER_ASAN
  void* fake_ = nullptr;
  const void* outer_bottom_ = nullptr;
  std::size_t outer_size_ = 0;
#endif
#ifdef TETHER_FIBER_TSAN
  void* tsan_fiber_ = nullptr;
  void* tsan_outer_ = nullptr;
#endif
};

Fiber* current_fiber() noexcept { return t_current_fiber; }

EventLoop& fiber_loop(Fiber& f) noexcept { return f.loop(); }

void fiber_suspend(Fiber& f) {
  if (t_current_fiber != &f) throw UsageError("fiber_suspend: not on this fiber");
  f.suspend();
}

void fiber_wake(Fiber& f) { f.wake(); }

void fiber_task_done(void* ctx, std::coroutine_handle<> self, std::exception_ptr error) noexcept {
  auto* st = static_cast<FiberWaitState*>(ctx);
  st->error = std::move(error);
  st->done = true;
  self.destroy();
  try {
    st->fiber->wake();
  } catch (...) {
    // No memory for the ready queue: the fiber stays suspended (its awaiter times out or the
    // loop's destruction reports it).
    TETHER_LOG_ERROR("fiber: cannot schedule its resumption: {}", describe_current_exception());
  }
}

void schedule_runner(EventLoop& loop, std::coroutine_handle<> h) { loop.schedule(h); }

// ------------------------------------------------------------------------------ FiberCall

FiberCall::FiberCall(FiberCall&& other) noexcept
    : loop_(other.loop_), fn_(std::move(other.fn_)), fiber_(std::exchange(other.fiber_, nullptr)),
      waiter_(std::exchange(other.waiter_, {})), woken_(std::exchange(other.woken_, false)) {}

FiberCall::~FiberCall() {
  if (fiber_) {
    fiber_->detach();
  } else if (woken_) {
    loop_->unschedule(waiter_);  // destroyed (cancelled) after its resumption was queued
  }
}

bool FiberCall::await_suspend(std::coroutine_handle<> h) {
  loop_->assert_in_loop_thread();
  auto* f = new Fiber(*loop_, loop_->fiber_stacks(), this, std::move(fn_));
  f->resume();
  if (f->finished()) {
    delete f;
    return false;  // it never waited: the awaiting coroutine goes straight on
  }
  fiber_ = f;
  waiter_ = h;
  return true;
}

}  // namespace detail

bool on_fiber_of(const EventLoop& loop) noexcept {
  detail::Fiber* f = detail::t_current_fiber;
  return f != nullptr && &f->loop() == &loop;
}

}  // namespace tether
