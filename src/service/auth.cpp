#include "tether/service/auth.hpp"

namespace tether::auth {

bool constant_time_equal(std::string_view given, std::string_view expected) noexcept {
  // Every byte of `expected` is looked at whatever `given` holds; a length difference is
  // folded into the same accumulator instead of returning early.
  volatile unsigned char diff = given.size() == expected.size() ? 0 : 1;
  const std::size_t n = given.size();
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const unsigned char g = n == 0 ? 0 : static_cast<unsigned char>(given[i % n]);
    diff = static_cast<unsigned char>(diff | (g ^ static_cast<unsigned char>(expected[i])));
  }
  return diff == 0;
}

std::string client_hello(std::string_view token) {
  if (token.empty()) throw UsageError("tether auth: empty token");
  if (token.size() > kMaxTokenSize) throw UsageError("tether auth: token longer than 1024 bytes");
  std::string out(kMagic);
  out.push_back(static_cast<char>(kVersion));
  out.push_back(static_cast<char>((token.size() >> 8) & 0xff));
  out.push_back(static_cast<char>(token.size() & 0xff));
  out.append(token);
  return out;
}

}  // namespace tether::auth
