#pragma once
/// \file The demo service of `tether serve --demo` (docs/cli.md lists its members).

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "tether/service/service.hpp"

namespace tether::tools {

/// Server counters, shared by every connection and loop thread.
struct DemoCounters {
  std::atomic<std::uint64_t> connections{0};
  std::atomic<std::uint64_t> open{0};
  std::atomic<std::uint64_t> calls{0};
  std::atomic<std::uint64_t> errors{0};
  std::mutex mu;
  std::map<std::string, std::uint64_t> per_method;  // under mu

  void note(const std::string& peer, const char* method);
};

/// The demo service; `counters` must outlive every server using it.
Service make_demo_service(std::shared_ptr<DemoCounters> counters);

}  // namespace tether::tools
