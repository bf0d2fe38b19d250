// tether serve --demo [ADDR]: the demo service (demo_service.cpp) over TCP, Unix sockets or TLS.

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <memory>

#include "address.hpp"
#include "commands.hpp"
#include "demo_service.hpp"
#include "tether/base/log.hpp"
#include "tether/net/tls.hpp"
#include "tether/registry/announce.hpp"
#include "tether/service/serve.hpp"

namespace tether::tools {

namespace {

struct ServeArgs {
  bool demo = false;
  std::string addr = "127.0.0.1:18861";
  std::size_t threads = 1;
  std::string generation = "auto";
  std::string tls_cert, tls_key, tls_client_ca;
  long busy_poll_us = -1;  // -1: the adaptive default
  std::vector<std::string> registries;
  bool http = false;
};

int run_serve(const ServeArgs& a) {
  if (!a.demo)
    throw CliError(kExitUsage, "serve: only the demo service is built in; use 'tether serve --demo [ADDR]'");
  Target t = parse_target(a.addr, true);
  if (t.kind == Target::Kind::kService)
    throw CliError(kExitUsage, "serve: ADDR must be host:port, [v6]:port or unix:PATH");
  ServeOptions opts;
  if (t.kind == Target::Kind::kUnix) {
    opts.unix_path = t.path;
  } else {
    opts.host = t.host;
    opts.port = t.port;
  }
  opts.server.threads = a.threads;
  opts.http.on_rpc_port = a.http;
  if (a.busy_poll_us >= 0) opts.server.busy_poll = std::chrono::microseconds(a.busy_poll_us);
  if (a.generation == "5") opts.connection.generation = rpc::Generation::k5;
  if (a.generation == "6") opts.connection.generation = rpc::Generation::k6;
  const bool tls = t.tls || !a.tls_cert.empty();
  if (tls) {
    if (a.tls_cert.empty() || a.tls_key.empty())
      throw CliError(kExitUsage, "serve: TLS needs --tls-cert and --tls-key");
    TlsServerOptions so;
    so.cert_file = a.tls_cert;
    so.key_file = a.tls_key;
    so.ca_file = a.tls_client_ca;
    so.require_client_cert = !a.tls_client_ca.empty();
    try {
      opts.server.tls = TlsContext::server(so);
    } catch (const std::exception& e) {
      throw CliError(kExitUsage, fmt::format("serve: TLS settings: {}", e.what()));
    }
  } else if (!a.tls_key.empty() || !a.tls_client_ca.empty()) {
    throw CliError(kExitUsage, "serve: --tls-key/--tls-client-ca need --tls-cert");
  }
  opts.on_listen = [tls](const std::vector<Address>& addresses) {
    const std::string where = addresses.empty() ? "?" : addresses.front().to_string();
    std::printf("listening on %s%s\n", tls && !addresses.empty() && addresses.front().is_ip() ? "tls://" : "",
                where.c_str());
    std::fflush(stdout);
  };
  for (const auto& url : a.registries) {
    try {
      opts.hooks.push_back(registry::announce(url));
    } catch (const std::exception& e) {
      throw CliError(kExitUsage, fmt::format("serve: --register {}: {}", url, e.what()));
    }
  }
  auto counters = std::make_shared<DemoCounters>();
  Service demo = make_demo_service(counters);
  try {
    serve(demo, opts);
  } catch (const std::exception& e) {
    throw CliError(kExitConnection, fmt::format("serve: cannot serve on {}: {}", t.to_string(), e.what()));
  }
  TETHER_LOG_INFO("stopped after {} connections and {} calls", counters->connections.load(),
                  counters->calls.load());
  return kExitOk;
}

}  // namespace

void add_serve(CLI::App& app, Runner& run) {
  auto args = std::make_shared<ServeArgs>();
  CLI::App* sub =
      app.add_subcommand("serve", "Serve the demo service (Ctrl-C or SIGTERM stops it gracefully)");
  sub->add_flag("--demo", args->demo,
                "Serve the built-in demo service (add, echo, upper, sleep, fail, countdown, stats, store)");
  sub->add_option("ADDR", args->addr,
                  "host:port (port 0: a free one), [v6]:port, unix:/path, unix:@name, tls://host:port")
      ->capture_default_str();
  sub->add_flag(
      "--http", args->http,
      "Also answer HTTP on the RPC port: /metrics, /healthz, /readyz, /status.json (tether stats) and the "
      "web console (docs/observability.md)");
  sub->add_option("--threads", args->threads, "Loop threads serving connections")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  sub->add_option("--generation", args->generation, "RPyC generation: auto (detect per connection), 5 or 6")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "5", "6"}));
  sub->add_option("--tls-cert", args->tls_cert, "Serve TLS with this certificate chain (PEM)")
      ->check(CLI::ExistingFile);
  sub->add_option("--tls-key", args->tls_key, "Private key of --tls-cert (PEM)")->check(CLI::ExistingFile);
  sub->add_option("--tls-client-ca", args->tls_client_ca,
                  "Require client certificates signed by this CA (PEM)")
      ->check(CLI::ExistingFile);
  sub->add_option("--busy-poll-us", args->busy_poll_us,
                  "Busy-poll the serving loops a fixed N us before sleeping (0: off; default: "
                  "adaptive, spinning only while requests arrive in quick succession)")
      ->check(CLI::Range(0L, 1000000L));
  sub->add_option(
      "--register", args->registries,
      "Announce the server as DEMO to a registry while it runs: udp://HOST[:PORT], tcp://HOST[:PORT], "
      "etcd://HOST:PORT (repeatable)");
  sub->footer(
      "Prints 'listening on ADDR' as its first line of output, with the port the kernel chose for port 0.");
  sub->callback([args, &run] { run = [args] { return run_serve(*args); }; });
}

}  // namespace tether::tools
