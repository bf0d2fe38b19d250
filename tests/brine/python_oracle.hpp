#pragma once
// Runs tests/brine/brine_vectors.py under /usr/bin/python3 with Debian's stock RPyC brine and
// returns its answers. A missing python3 or python3-rpyc is a test FAILURE (thrown), never a skip.

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "tether/base/bytes.hpp"

#ifndef TETHER_BRINE_ORACLE
#error "TETHER_BRINE_ORACLE must name tests/brine/brine_vectors.py"
#endif

namespace tether::brine::testing {

inline std::string to_hex(std::string_view data) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(data.size() * 2);
  for (char c : data) {
    auto b = static_cast<unsigned char>(c);
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}
inline std::string to_hex(const Bytes& b) { return to_hex(b.view()); }

inline Bytes from_hex(std::string_view hex) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    throw std::runtime_error(std::string("bad hex digit ") + c);
  };
  if (hex.size() % 2 != 0) throw std::runtime_error("odd-length hex");
  std::string out(hex.size() / 2, '\0');
  for (std::size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<char>(nibble(hex[2 * i]) * 16 + nibble(hex[2 * i + 1]));
  }
  return Bytes(std::move(out));
}

/// One answer line: "OK <hex> <repr hex>" or "ERR <reason>" (or "1"/"0" in utf8 mode).
struct OracleAnswer {
  bool ok = false;
  Bytes encoded;     // brine bytes produced by Python
  std::string repr;  // Python's repr, UTF-8
  std::string raw;   // the whole line
};

class PythonOracle {
 public:
  /// The RPyC version the last run reported ("5.3.0").
  static std::string& version() {
    static std::string v;
    return v;
  }

  /// Runs the oracle in `mode` over `lines`; returns one raw output line per input line.
  static std::vector<std::string> run_raw(const std::string& mode, const std::vector<std::string>& lines) {
    const char* tmpdir = std::getenv("TMPDIR");
    std::string path = std::string(tmpdir && *tmpdir ? tmpdir : "/tmp") + "/tether_brine_XXXXXX";
    int fd = ::mkstemp(path.data());
    if (fd < 0) throw std::runtime_error("mkstemp failed for " + path);
    std::string input;
    for (const auto& l : lines) {
      input += l;
      input += '\n';
    }
    std::size_t off = 0;
    while (off < input.size()) {
      ssize_t n = ::write(fd, input.data() + off, input.size() - off);
      if (n <= 0) {
        ::close(fd);
        ::unlink(path.c_str());
        throw std::runtime_error("writing the oracle input failed");
      }
      off += static_cast<std::size_t>(n);
    }
    ::close(fd);
    // -I: ignore PYTHONPATH and the user site, so the Debian python3-rpyc is what runs.
    std::string cmd =
        "/usr/bin/python3 -I '" + std::string(TETHER_BRINE_ORACLE) + "' " + mode + " '" + path + "' 2>&1";
    FILE* p = ::popen(cmd.c_str(), "r");
    if (p == nullptr) {
      ::unlink(path.c_str());
      throw std::runtime_error("popen failed: " + cmd);
    }
    std::string out;
    char buf[65536];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    const int status = ::pclose(p);
    ::unlink(path.c_str());
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (code == 3 || out.rfind("NORPYC", 0) == 0) {
      throw std::runtime_error(
          "the stock RPyC brine is not importable by /usr/bin/python3 (install Debian's python3-rpyc; CI "
          "does): " +
          out);
    }
    if (code != 0) {
      throw std::runtime_error("the brine oracle failed (exit " + std::to_string(code) +
                               ", is /usr/bin/python3 "
                               "installed?): " +
                               out.substr(0, 2000));
    }
    std::vector<std::string> result;
    std::size_t start = 0;
    while (start < out.size()) {
      std::size_t nl = out.find('\n', start);
      if (nl == std::string::npos) nl = out.size();
      result.push_back(out.substr(start, nl - start));
      start = nl + 1;
    }
    if (result.empty() || result.front().rfind("RPYC ", 0) != 0) {
      throw std::runtime_error("the brine oracle printed no RPYC header: " + out.substr(0, 2000));
    }
    version() = result.front().substr(5);
    result.erase(result.begin());
    if (result.size() != lines.size()) {
      throw std::runtime_error("the brine oracle answered " + std::to_string(result.size()) + " lines for " +
                               std::to_string(lines.size()) + " inputs");
    }
    return result;
  }

  /// exprs / roundtrip modes, parsed.
  static std::vector<OracleAnswer> run(const std::string& mode, const std::vector<std::string>& lines) {
    std::vector<OracleAnswer> answers;
    for (auto& line : run_raw(mode, lines)) {
      OracleAnswer a;
      a.raw = line;
      if (line.rfind("OK ", 0) == 0) {
        const std::size_t sp = line.find(' ', 3);
        if (sp == std::string::npos) throw std::runtime_error("malformed oracle line: " + line);
        a.ok = true;
        a.encoded = from_hex(std::string_view(line).substr(3, sp - 3));
        a.repr = std::string(from_hex(std::string_view(line).substr(sp + 1)).view());
      }
      answers.push_back(std::move(a));
    }
    return answers;
  }
};

}  // namespace tether::brine::testing
