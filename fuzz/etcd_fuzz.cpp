// The parsing of the etcd JSON gateway's replies (src/registry/etcd_client.*, etcd_keys.*,
// prefix_watch.*), without I/O: the body is classified as a unary reply under a fuzzed HTTP
// status, then read as a range, lease grant, lease keepalive and authenticate reply, as the
// lines of a watch stream, and as a service entry. Nothing may throw but the errors the
// functions document (EtcdError, EtcdUnavailable), and what they return must hold together:
// keys and values of a range survive base64 re-encoding, watch entries are non-empty suffixes,
// and a service entry's value re-encoded by service_value() parses to the same endpoint.
//
// Input: [status selector][prefix selector] then the body (JSON text, lines for the watch).

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "fuzz_util.hpp"
#include "registry/etcd_client.hpp"
#include "registry/etcd_keys.hpp"
#include "registry/prefix_watch.hpp"
#include "tether/base/log.hpp"
#include "tether/registry/etcd.hpp"

namespace rd = tether::registry::detail;

namespace {

constexpr long kStatuses[] = {200, 400, 401, 404, 500, 503, 0, 301};
constexpr const char* kPrefixes[] = {"/tether/services/", "", "/a/", "\xff"};

/// A key under `prefix` as the announcer writes it ("<prefix>NAME/host:port") and its value.
void check_service_entry(std::string_view host_port, std::string_view value) {
  std::optional<tether::registry::Endpoint> ep = rd::parse_service_entry(host_port, value);
  if (!ep) return;
  FUZZ_CHECK(ep->port != 0);
  FUZZ_CHECK(ep->weight <= 1000000);
  const std::string canonical = rd::service_value(ep->generation, ep->tls, ep->weight);
  std::optional<tether::registry::Endpoint> again = rd::parse_service_entry(host_port, canonical);
  FUZZ_CHECK(again && *again == *ep);
}

void check_range(const nlohmann::json& j, const std::string& prefix) {
  const rd::EtcdClient::Range r = rd::parse_range(j);
  for (const rd::EtcdKeyValue& kv : r.kvs) {
    FUZZ_CHECK(rd::base64_decode(rd::base64_encode(kv.key)) == kv.key);
    FUZZ_CHECK(rd::base64_decode(rd::base64_encode(kv.value)) == kv.value);
    if (kv.key.size() > prefix.size() && kv.key.compare(0, prefix.size(), prefix) == 0) {
      const std::string_view rest = std::string_view(kv.key).substr(prefix.size());
      const std::size_t slash = rest.rfind('/');
      check_service_entry(slash == std::string_view::npos ? rest : rest.substr(slash + 1), kv.value);
    }
  }
}

void check_watch(std::string_view body, const std::string& prefix) {
  std::map<std::string, std::string> entries{{"OLD/10.0.0.1:1", "{}"}};
  while (!body.empty()) {
    const std::size_t nl = body.find('\n');
    const std::string line(body.substr(0, nl));
    body = nl == std::string_view::npos ? std::string_view() : body.substr(nl + 1);
    try {
      rd::WatchLine w = rd::parse_watch_line(line, prefix, entries);
      if (w.kind == rd::WatchLine::kEvents) entries = std::move(w.entries);
      if (w.kind != rd::WatchLine::kEvents) FUZZ_CHECK(w.entries.empty());
    } catch (const tether::registry::EtcdUnavailable& e) {
      FUZZ_CHECK(e.what()[0] != '\0');
    }
    for (const auto& [k, v] : entries) FUZZ_CHECK(!k.empty());
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  tether::set_log_level(tether::LogLevel::kOff);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  tether::fuzz::Input in(data, size);
  const long status = kStatuses[in.u8() % std::size(kStatuses)];
  const std::string prefix = kPrefixes[in.u8() % std::size(kPrefixes)];
  const std::string_view body_view = in.rest();
  const std::string body(body_view);

  const rd::EtcdReply reply = rd::classify_reply(status, body);
  FUZZ_CHECK(!reply.message.empty() || reply.kind == rd::EtcdReply::kOk);
  if (reply.kind == rd::EtcdReply::kOk) {
    FUZZ_CHECK(status == 200 && reply.json.is_object() && !reply.json.contains("error"));
    const nlohmann::json& j = reply.json;
    check_range(j, prefix);
    try {
      FUZZ_CHECK(rd::parse_grant(j) != 0);
    } catch (const tether::registry::EtcdError& e) {
      FUZZ_CHECK(e.what()[0] != '\0');
    }
    (void)rd::parse_keepalive(j);
    if (std::optional<std::string> token = rd::parse_auth_token(status, j)) FUZZ_CHECK(j.contains("token"));
  } else {
    FUZZ_CHECK(reply.json.is_null());
  }
  // The same text as an error reply's fields, whatever the status.
  const nlohmann::json parsed = nlohmann::json::parse(body, nullptr, false);
  const auto [code, message] = rd::error_of(parsed);
  (void)code;
  FUZZ_CHECK(!message.empty());
  (void)rd::json_int(parsed, "ID");
  (void)rd::json_str(parsed, "key");

  check_watch(body_view, prefix);

  // A service entry: the first line as the key's last segment, the rest as its value.
  const std::size_t nl = body_view.find('\n');
  if (nl != std::string_view::npos) check_service_entry(body_view.substr(0, nl), body_view.substr(nl + 1));
  return 0;
}
