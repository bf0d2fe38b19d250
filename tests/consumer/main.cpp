// Consumer smoke test: uses only installed tether headers and libraries.
// Prints "answer=42" and exits 0 when the loop, timers and Task<T> work end to end.
#include <chrono>
#include <cstdio>

#include "tether/tether.hpp"

namespace {

tether::Task<int> answer_later() {
  co_await tether::sleep(std::chrono::milliseconds(1));
  co_return 42;
}

}  // namespace

int main() {
  tether::EventLoop loop;
  const auto start = std::chrono::steady_clock::now();
  const int answer = loop.run_until_complete(answer_later());
  const auto elapsed = std::chrono::steady_clock::now() - start;
  std::printf("answer=%d\n", answer);
  if (answer != 42 || elapsed < std::chrono::milliseconds(1)) {
    std::fprintf(stderr, "consumer: unexpected result (answer=%d)\n", answer);
    return 1;
  }
  return 0;
}
