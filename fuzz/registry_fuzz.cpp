// The registry datagram codec (registry/protocol.hpp): every decoder gets the input. What a
// decoder accepts must survive a round trip through the matching encoder: re-encoded, it
// decodes to the same request or reply (and, for replies, encoding within a byte budget keeps
// a prefix that decodes to that prefix and fits the budget). A decode under tighter request
// limits succeeds only where the default limits do, with the same result; "OK" is no QUERY or
// LIST reply.
//
// Input: one datagram (or TCP payload), as it came off the wire.

#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <cstdio>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "fuzz_util.hpp"
#include "tether/registry/protocol.hpp"

namespace reg = tether::registry;

namespace {

bool same_request(const reg::Request& a, const reg::Request& b) {
  if (a.command != b.command) return false;
  switch (a.command) {
    case reg::Command::kRegister: return a.aliases == b.aliases && a.port == b.port;
    case reg::Command::kUnregister: return a.port == b.port;
    case reg::Command::kQuery: return a.name == b.name;
    case reg::Command::kList: return a.filter_host == b.filter_host;
  }
  return false;
}

tether::Bytes encode(const reg::Request& r) {
  switch (r.command) {
    case reg::Command::kRegister: return reg::encode_register(r.aliases, r.port);
    case reg::Command::kUnregister: return reg::encode_unregister(r.port);
    case reg::Command::kQuery: return reg::encode_query(r.name);
    case reg::Command::kList: return reg::encode_list(r.filter_host);
  }
  return {};
}

void check_request(std::span<const std::uint8_t> data) {
  const auto r = reg::decode_request(data);
  reg::RequestLimits tight;
  tight.max_aliases = 2;
  tight.max_name_bytes = 8;
  const auto t = reg::decode_request(data, tight);
  if (t) {
    FUZZ_CHECK(r);
    FUZZ_CHECK(same_request(*t, *r));
  } else if (r) {
    FUZZ_CHECK(t.error() == reg::DecodeError::kBadArguments);  // only the limits differ
  }
  if (!r) return;
  // Canonical encoding: never longer than what was accepted (which fit a datagram).
  const tether::Bytes again = encode(*r);
  FUZZ_CHECK(again.size() <= data.size());
  const auto back = reg::decode_request(again.span());
  FUZZ_CHECK(back);
  FUZZ_CHECK(same_request(*back, *r));
}

void check_query_reply(std::span<const std::uint8_t> data) {
  const std::optional<std::vector<reg::HostPort>> q = reg::decode_query_reply(data);
  if (!q) return;
  std::size_t kept = 0;
  const tether::Bytes all = reg::encode_query_reply(*q, std::size_t{1} << 20, &kept);
  FUZZ_CHECK(kept == q->size());
  const auto back = reg::decode_query_reply(all.span());
  FUZZ_CHECK(back && *back == *q);
  // Within one datagram: a prefix, and it fits.
  const tether::Bytes part = reg::encode_query_reply(*q, reg::kMaxDatagram, &kept);
  FUZZ_CHECK(part.size() <= reg::kMaxDatagram);
  FUZZ_CHECK(kept <= q->size());
  const auto prefix = reg::decode_query_reply(part.span());
  FUZZ_CHECK(prefix && prefix->size() == kept);
  FUZZ_CHECK(std::equal(prefix->begin(), prefix->end(), q->begin()));
}

void check_list_reply(std::span<const std::uint8_t> data) {
  const auto l = reg::decode_list_reply(data);
  if (!l) return;
  std::size_t kept = 7;
  const tether::Bytes all = reg::encode_list_reply(*l, std::size_t{1} << 20, &kept);
  const auto back = reg::decode_list_reply(all.span());
  FUZZ_CHECK(back && *back == *l);
  if (!*l) {
    FUZZ_CHECK(kept == 0);
    return;
  }
  FUZZ_CHECK(kept == (*l)->size());
  const tether::Bytes part = reg::encode_list_reply(*l, reg::kMaxDatagram, &kept);
  FUZZ_CHECK(part.size() <= reg::kMaxDatagram);
  const auto prefix = reg::decode_list_reply(part.span());
  FUZZ_CHECK(prefix && *prefix && (*prefix)->size() == kept && kept <= (*l)->size());
  FUZZ_CHECK(std::equal((*prefix)->begin(), (*prefix)->end(), (*l)->begin()));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> in(data, size);
  check_request(in);
  check_query_reply(in);
  check_list_reply(in);
  if (reg::is_ok_reply(in)) {
    FUZZ_CHECK(!reg::decode_query_reply(in) && !reg::decode_list_reply(in));
    FUZZ_CHECK(reg::is_ok_reply(reg::encode_ok_reply().span()));
  }
  return 0;
}
