#pragma once
// Helpers of the registry subcommands' tests (registry_*_test.cpp): reading the address a
// `tether registry` printed, and asking a registry until it knows the servers a test started.

#include <string>
#include <vector>

#include "tool_process.hpp"

namespace tether::testing {

/// The lines of `text` (without their newlines).
inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const auto nl = text.find('\n', pos);
    if (nl == std::string::npos) {
      out.push_back(text.substr(pos));
      break;
    }
    out.push_back(text.substr(pos, nl - pos));
    pos = nl + 1;
  }
  return out;
}

/// "HOST:PORT" from "registry listening on HOST:PORT (udp)", or "" for another line.
inline std::string registry_address(const std::optional<std::string>& line, const std::string& transport) {
  const std::string head = "registry listening on ";
  const std::string tail = " (" + transport + ")";
  if (!line || line->rfind(head, 0) != 0 || line->size() < head.size() + tail.size() ||
      line->compare(line->size() - tail.size(), tail.size(), tail) != 0)
    return "";
  return line->substr(head.size(), line->size() - head.size() - tail.size());
}

/// `tether discover NAME --registry URL` until it prints `count` endpoints. Servers register
/// right after they listen, so this is a handful of real lookups (each with its own timeout),
/// bounded in number; the last result is returned.
inline ToolResult discover_until(const std::string& url, const std::string& name, std::size_t count,
                                 int tries = 100) {
  ToolResult r;
  for (int i = 0; i < tries; ++i) {
    r = run_tool({"discover", name, "--registry", url, "--timeout", "2"});
    if (r.code == 0 && lines_of(r.out).size() >= count) break;
  }
  return r;
}

}  // namespace tether::testing
