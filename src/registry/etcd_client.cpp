#include "registry/etcd_client.hpp"

#include <fmt/format.h>

#include <tuple>
#include <utility>

#include "tether/base/log.hpp"

namespace tether::registry::detail {

namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int sextet(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;
  if (c == '/' || c == '_') return 63;
  return -1;
}

std::string url_of(const std::string& endpoint, const std::string& path) {
  const bool has_scheme = endpoint.rfind("http://", 0) == 0 || endpoint.rfind("https://", 0) == 0;
  return (has_scheme ? endpoint : "http://" + endpoint) + "/v3/" + path;
}

}  // namespace

std::pair<int, std::string> error_of(const nlohmann::json& j) {
  if (!j.is_object()) return {0, "unexpected reply"};
  int code = 0;
  if (auto c = j.find("code"); c != j.end() && c->is_number_integer()) code = c->get<int>();
  std::string message;
  for (const char* key : {"message", "error"}) {
    auto m = j.find(key);
    if (m != j.end() && m->is_string()) {
      message = m->get<std::string>();
      break;
    }
  }
  return {code, message.empty() ? std::string("unknown error") : message};
}

EtcdReply classify_reply(long status, const std::string& body) {
  EtcdReply r;
  nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    r.kind = EtcdReply::kUnreachable;
    r.message = fmt::format("HTTP {} without a JSON object (is this etcd's client port?)", status);
    return r;
  }
  if (status == 200 && !j.contains("error")) {
    r.kind = EtcdReply::kOk;
    r.json = std::move(j);
    return r;
  }
  std::tie(r.code, r.message) = error_of(j);
  if (r.code == EtcdError::kUnavailable || r.code == 4 /* deadline exceeded */) {
    r.kind = EtcdReply::kUnreachable;
    r.message = fmt::format("{} (code {})", r.message, r.code);
    return r;
  }
  const bool token_expired =
      r.code == EtcdError::kUnauthenticated || r.message.find("invalid auth token") != std::string::npos;
  r.kind = token_expired ? EtcdReply::kTokenExpired : EtcdReply::kError;
  return r;
}

std::optional<std::string> parse_auth_token(long status, const nlohmann::json& j) {
  if (status != 200 || !j.is_object()) return std::nullopt;
  auto t = j.find("token");
  if (t == j.end() || !t->is_string()) return std::nullopt;
  return t->get<std::string>();
}

std::string base64_encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const auto v = (std::uint32_t(std::uint8_t(in[i])) << 16) |
                   (std::uint32_t(std::uint8_t(in[i + 1])) << 8) | std::uint8_t(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out.push_back(kAlphabet[(v >> s) & 63]);
  }
  if (i < in.size()) {
    std::uint32_t v = std::uint32_t(std::uint8_t(in[i])) << 16;
    if (i + 1 < in.size()) v |= std::uint32_t(std::uint8_t(in[i + 1])) << 8;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(i + 1 < in.size() ? kAlphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view in) {
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);
  std::string out;
  out.reserve(in.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    const int v = sextet(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  if (bits >= 6) return std::nullopt;  // one stray sextet
  return out;
}

std::string prefix_end(std::string prefix) {
  while (!prefix.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(prefix.back());
    if (last < 0xff) {
      ++last;
      return prefix;
    }
    prefix.pop_back();
  }
  return std::string(1, '\0');  // every key
}

std::int64_t json_int(const nlohmann::json& j, const char* key) {
  if (!j.is_object()) return 0;
  auto it = j.find(key);
  if (it == j.end()) return 0;
  if (it->is_number_integer()) return it->get<std::int64_t>();
  if (it->is_string()) {
    try {
      return std::stoll(it->get<std::string>());
    } catch (...) {
      return 0;
    }
  }
  return 0;
}

std::string json_str(const nlohmann::json& j, const char* key) {
  if (!j.is_object()) return {};
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// -------------------------------------------------------------------------------- EtcdClient

EtcdClient::EtcdClient(EventLoop& loop, EtcdConfig config) : config_(std::move(config)), multi_(loop) {
  if (config_.endpoints.empty()) throw UsageError("etcd: no endpoints");
}

EtcdClient::~EtcdClient() = default;

std::string EtcdClient::describe() const {
  std::string out;
  for (const std::string& e : config_.endpoints) {
    if (!out.empty()) out += ",";
    out += e;
  }
  return out;
}

void EtcdClient::rotate() noexcept { current_ = (current_ + 1) % config_.endpoints.size(); }

std::vector<std::string> EtcdClient::auth_headers() const {
  if (token_.empty()) return {};
  return {"Authorization: " + token_};
}

Task<void> EtcdClient::authenticate(std::size_t endpoint) {
  nlohmann::json body = {{"name", config_.username}, {"password", config_.password}};
  HttpRequest req;
  req.url = url_of(config_.endpoints[endpoint], "auth/authenticate");
  req.body = body.dump();
  req.connect_timeout = config_.options.connect_timeout;
  req.timeout = config_.options.request_timeout;
  HttpTransfer t(multi_, std::move(req));
  HttpResponse resp = co_await t.finish();
  nlohmann::json j = nlohmann::json::parse(resp.body, nullptr, false);
  if (std::optional<std::string> token = parse_auth_token(resp.status, j)) {
    token_ = std::move(*token);
    co_return;
  }
  auto [code, message] = error_of(j);
  throw EtcdError(code, resp.status,
                  fmt::format("etcd at {}: authentication as '{}' failed: {} (code {}, HTTP {})",
                              config_.endpoints[endpoint], config_.username, message, code, resp.status));
}

Task<std::optional<nlohmann::json>> EtcdClient::attempt(std::size_t endpoint, const std::string& path,
                                                        const nlohmann::json& body, std::string& failure) {
  const std::string& name = config_.endpoints[endpoint];
  for (int round = 0; round < 2; ++round) {
    HttpResponse resp;
    try {
      if (!config_.username.empty() && token_.empty()) co_await authenticate(endpoint);
      HttpRequest req;
      req.url = url_of(name, path);
      req.body = body.dump();
      req.headers = auth_headers();
      req.connect_timeout = config_.options.connect_timeout;
      req.timeout = config_.options.request_timeout;
      HttpTransfer t(multi_, std::move(req));
      resp = co_await t.finish();
    } catch (const EtcdError&) {
      throw;
    } catch (const Error& e) {
      failure = e.what();  // unreachable, timed out, reset
      co_return std::nullopt;
    }
    EtcdReply reply = classify_reply(resp.status, resp.body);
    if (reply.kind == EtcdReply::kOk) co_return std::move(reply.json);
    if (reply.kind == EtcdReply::kUnreachable) {
      failure = std::move(reply.message);
      co_return std::nullopt;
    }
    if (round == 0 && !config_.username.empty() && reply.kind == EtcdReply::kTokenExpired) {
      TETHER_LOG_INFO("etcd at {}: {}; authenticating again", name, reply.message);
      token_.clear();
      continue;
    }
    throw EtcdError(reply.code, resp.status,
                    fmt::format("etcd at {}: {} failed: {} (code {})", name, path, reply.message, reply.code));
  }
  failure = "authentication did not hold";
  co_return std::nullopt;
}

Task<nlohmann::json> EtcdClient::call(std::string path, nlohmann::json body) {
  std::string failures;
  const std::size_t n = config_.endpoints.size();
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t at = (current_ + i) % n;
    std::string why;
    std::optional<nlohmann::json> j = co_await attempt(at, path, body, why);
    if (j) {
      if (at != current_) TETHER_LOG_INFO("etcd: now using {} ({} failed)", config_.endpoints[at], failures);
      current_ = at;
      co_return std::move(*j);
    }
    if (!failures.empty()) failures += "; ";
    failures += config_.endpoints[at] + ": " + why;
  }
  throw EtcdUnavailable(fmt::format("no etcd endpoint answered {}: {}", path, failures));
}

Task<nlohmann::json> EtcdClient::call_at(std::size_t endpoint, std::string path, nlohmann::json body) {
  std::string why;
  std::optional<nlohmann::json> j = co_await attempt(endpoint, path, body, why);
  if (!j) throw EtcdUnavailable(fmt::format("etcd at {}: {}: {}", config_.endpoints.at(endpoint), path, why));
  co_return std::move(*j);
}

Task<std::int64_t> EtcdClient::grant(Duration ttl) {
  const auto seconds = std::max<std::int64_t>(
      1, std::chrono::duration_cast<std::chrono::seconds>(ttl + std::chrono::milliseconds(999)).count());
  nlohmann::json body;
  body["TTL"] = std::to_string(seconds);
  nlohmann::json j = co_await call(std::string("lease/grant"), std::move(body));
  co_return parse_grant(j);
}

Task<std::int64_t> EtcdClient::keepalive(std::int64_t lease) {
  nlohmann::json body;
  body["ID"] = std::to_string(lease);
  nlohmann::json j = co_await call(std::string("lease/keepalive"), std::move(body));
  co_return parse_keepalive(j);
}

Task<void> EtcdClient::revoke(std::int64_t lease) {
  nlohmann::json body;
  body["ID"] = std::to_string(lease);
  nlohmann::json j = co_await call(std::string("lease/revoke"), std::move(body));
  (void)j;
}

Task<void> EtcdClient::put(std::string key, std::string value, std::int64_t lease) {
  nlohmann::json body = {{"key", base64_encode(key)}, {"value", base64_encode(value)}};
  if (lease != 0) body["lease"] = std::to_string(lease);
  nlohmann::json j = co_await call(std::string("kv/put"), std::move(body));
  (void)j;
}

Task<EtcdClient::Range> EtcdClient::get_prefix(std::string prefix) {
  nlohmann::json body = {{"key", base64_encode(prefix)}, {"range_end", base64_encode(prefix_end(prefix))}};
  nlohmann::json j = co_await call(std::string("kv/range"), std::move(body));
  co_return parse_range(j);
}

EtcdClient::Range parse_range(const nlohmann::json& j) {
  EtcdClient::Range r;
  if (auto h = j.find("header"); h != j.end()) r.revision = json_int(*h, "revision");
  auto kvs = j.find("kvs");
  if (kvs != j.end() && kvs->is_array()) {
    for (const nlohmann::json& kv : *kvs) {
      if (!kv.is_object()) continue;
      std::optional<std::string> key = base64_decode(json_str(kv, "key"));
      std::optional<std::string> value = base64_decode(json_str(kv, "value"));
      if (!key || !value) continue;
      r.kvs.push_back(EtcdKeyValue{std::move(*key), std::move(*value), json_int(kv, "mod_revision"),
                                   json_int(kv, "lease")});
    }
  }
  return r;
}

std::int64_t parse_grant(const nlohmann::json& j) {
  const std::int64_t id = json_int(j, "ID");
  if (id == 0) throw EtcdError(0, 200, "etcd: lease/grant returned no lease: " + j.dump());
  return id;
}

std::int64_t parse_keepalive(const nlohmann::json& j) {
  auto result = j.find("result");
  return result == j.end() ? 0 : json_int(*result, "TTL");
}

std::unique_ptr<HttpTransfer> EtcdClient::open_watch(const std::string& prefix, std::int64_t start_revision) {
  nlohmann::json create = {{"key", base64_encode(prefix)}, {"range_end", base64_encode(prefix_end(prefix))}};
  if (start_revision > 0) create["start_revision"] = std::to_string(start_revision);
  HttpRequest req;
  req.url = url_of(config_.endpoints[current_], "watch");
  req.body = nlohmann::json({{"create_request", create}}).dump();
  req.headers = auth_headers();
  // etcd cancels the watch when its member loses the cluster's leader (gRPC metadata).
  req.headers.push_back("Grpc-Metadata-hasleader: true");
  req.connect_timeout = config_.options.connect_timeout;
  return std::make_unique<HttpTransfer>(multi_, std::move(req));
}

}  // namespace tether::registry::detail
