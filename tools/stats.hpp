#pragma once
/// \file Latency summaries for ping and bench.

#include <algorithm>
#include <cstddef>
#include <vector>

namespace tether::tools {

struct LatencySummary {
  std::size_t count = 0;
  double min = 0, avg = 0, max = 0, p50 = 0, p99 = 0;  // milliseconds
};

/// Nearest-rank percentiles of `ms` (sorted in place).
inline LatencySummary summarize(std::vector<double>& ms) {
  LatencySummary s;
  s.count = ms.size();
  if (ms.empty()) return s;
  std::sort(ms.begin(), ms.end());
  double sum = 0;
  for (double v : ms) sum += v;
  s.min = ms.front();
  s.max = ms.back();
  s.avg = sum / static_cast<double>(ms.size());
  auto rank = [&](double p) {
    std::size_t k = static_cast<std::size_t>(p * static_cast<double>(ms.size()) + 0.999999);
    if (k == 0) k = 1;
    return ms[std::min(k, ms.size()) - 1];
  };
  s.p50 = rank(0.50);
  s.p99 = rank(0.99);
  return s;
}

}  // namespace tether::tools
