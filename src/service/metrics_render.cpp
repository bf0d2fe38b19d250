// A metrics::Snapshot as Prometheus text (exposition format 0.0.4) and as /status.json.

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <string_view>

#include "tether/service/metrics.hpp"

namespace tether {

namespace {

/// A label value with \, " and newline escaped (format 0.0.4).
std::string escape_label(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

class Exposition {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  }
  /// One sample line; `value` a std::uint64_t or a double.
  template <class V>
  void sample(std::string_view name, std::string_view labels, V value) {
    out_ += name;
    if (!labels.empty()) {
      out_ += '{';
      out_ += labels;
      out_ += '}';
    }
    out_ += fmt::format(" {}\n", value);
  }
  void single(std::string_view name, std::string_view type, std::string_view help, std::uint64_t value) {
    family(name, type, help);
    sample(name, "", value);
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

std::string method_labels(const metrics::MethodFigures& m) {
  return fmt::format("method=\"{}\",handler=\"{}\"", escape_label(m.method), escape_label(m.handler));
}

/// The exposed `le` bounds: 1, 2 and 5 of each decade (a subset of the kept buckets).
bool exposed_bound(std::size_t i) {
  const std::size_t m = i % 9 + 1;
  return i == metrics::kFiniteBuckets - 1 || m == 1 || m == 2 || m == 5;
}

void histograms(Exposition& e, const metrics::Snapshot& s) {
  const std::string_view name = "tether_request_duration_seconds";
  e.family(name, "histogram",
           "Time from a request's start to its reply being queued, by handler and method.");
  const auto& bounds = metrics::bucket_bounds();
  for (const metrics::MethodFigures& m : s.methods) {
    const std::string labels = method_labels(m);
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < metrics::kFiniteBuckets; ++i) {
      cumulative += m.latency.counts[i];
      if (!exposed_bound(i)) continue;
      const double le = static_cast<double>(bounds[i]) / 1e9;
      e.sample("tether_request_duration_seconds_bucket", fmt::format("{},le=\"{}\"", labels, le), cumulative);
    }
    e.sample("tether_request_duration_seconds_bucket", labels + ",le=\"+Inf\"", m.latency.count);
    e.sample("tether_request_duration_seconds_sum", labels, m.latency.sum_seconds);
    e.sample("tether_request_duration_seconds_count", labels, m.latency.count);
  }
}

void loop_figures(Exposition& e, const metrics::Snapshot& s) {
  std::vector<std::string> labels;
  for (const auto& l : s.loops) labels.push_back(fmt::format("loop=\"{}\"", l.index));
  auto each = [&](std::string_view name, std::string_view type, std::string_view help, auto value_of) {
    e.family(name, type, help);
    for (std::size_t i = 0; i < s.loops.size(); ++i) e.sample(name, labels[i], value_of(s.loops[i]));
  };
  e.family("tether_loop_lag_seconds", "summary",
           "Loop lag, sampled: time from epoll reporting events ready to the end of the loop iteration that "
           "handles them, by loop thread.");
  for (std::size_t i = 0; i < s.loops.size(); ++i) {
    e.sample("tether_loop_lag_seconds_sum", labels[i], s.loops[i].lag_sum_seconds);
    e.sample("tether_loop_lag_seconds_count", labels[i], s.loops[i].lag_samples);
  }
  each("tether_loop_lag_max_seconds", "gauge", "Largest loop lag sampled since the loop started.",
       [](const metrics::LoopThread& l) { return l.lag_max_seconds; });
  each("tether_busy_poll_seconds_total", "counter", "Time the loop spent busy-polling (spinning) for I/O.",
       [](const metrics::LoopThread& l) { return l.busy_poll_seconds; });
  each("tether_busy_poll_caught_total", "counter", "Busy-poll spins that I/O ended (a sleep saved).",
       [](const metrics::LoopThread& l) { return l.busy_poll_caught; });
  each("tether_busy_poll_missed_total", "counter",
       "Busy-poll spins that caught nothing (the loop then slept).",
       [](const metrics::LoopThread& l) { return l.busy_poll_missed; });
  each("tether_worker_jobs_queued", "gauge", "Jobs waiting for a thread of the loop's worker pool.",
       [](const metrics::LoopThread& l) { return l.worker_queued; });
  each("tether_worker_jobs_running", "gauge", "Jobs running on the loop's worker pool.",
       [](const metrics::LoopThread& l) { return l.worker_running; });
}

void registry_figures(Exposition& e, const metrics::RegistryFigures& r) {
  if (!r.configured) return;
  e.family("tether_registry_info", "gauge", "The registry the server announces itself to (value always 1).");
  e.sample("tether_registry_info", fmt::format("registry=\"{}\"", escape_label(r.registry)),
           std::uint64_t{1});
  e.single("tether_registry_registered", "gauge",
           "1 when the last announcement to the registry was acknowledged.", r.registered ? 1 : 0);
  e.family("tether_registry_last_announce_timestamp_seconds", "gauge",
           "Unix time of the last acknowledged announcement (0: none yet).");
  e.sample("tether_registry_last_announce_timestamp_seconds", "", r.last_announce_unix);
  e.single("tether_registry_announcements_total", "counter", "Announcements the registry acknowledged.",
           r.announcements);
  e.single("tether_registry_announce_failures_total", "counter", "Announcements not acknowledged.",
           r.failures);
}

}  // namespace

std::string render_prometheus(const metrics::Snapshot& s) {
  Exposition e;
  e.family("tether_service_info", "gauge", "The service this server exposes (value always 1).");
  e.sample("tether_service_info", fmt::format("service=\"{}\"", escape_label(s.service)), std::uint64_t{1});
  e.family("tether_uptime_seconds", "gauge", "Seconds since the server's metrics started.");
  e.sample("tether_uptime_seconds", "", s.uptime_seconds);
  e.single(
      "tether_ready", "gauge",
      "1 while listening, not draining and registered when a registry is configured (what /readyz answers).",
      s.ready ? 1 : 0);
  e.single("tether_connections_open", "gauge", "RPC connections open now.", s.connections_open);
  e.single("tether_connections_accepted_total", "counter", "RPC connections accepted.",
           s.connections_accepted);
  e.single("tether_connections_refused_total", "counter",
           "RPC connections refused (wrong or missing auth token, on_connect raised).",
           s.connections_refused);
  e.single("tether_connections_closed_total", "counter", "RPC connections closed.", s.connections_closed);
  e.family("tether_connections_closed_by_reason_total", "counter",
           "RPC connections closed, by why (peer_close, disconnected, idle_timeout, frame_timeout, "
           "protocol_error, limit_exceeded, refused, server_shutdown, cancelled, io_error).");
  for (const auto& [reason, n] : s.closed_by_reason) {
    e.sample("tether_connections_closed_by_reason_total", fmt::format("reason=\"{}\"", escape_label(reason)),
             n);
  }
  e.family("tether_requests_total", "counter", "Requests served, by handler and method.");
  for (const auto& m : s.methods) e.sample("tether_requests_total", method_labels(m), m.calls);
  e.family("tether_request_errors_total", "counter",
           "Requests answered with an exception, by handler and method.");
  for (const auto& m : s.methods) e.sample("tether_request_errors_total", method_labels(m), m.errors);
  e.family("tether_errors_total", "counter", "Exceptions answered, by the Python type the peer sees.");
  for (const auto& [type, n] : s.errors_by_type) {
    e.sample("tether_errors_total", fmt::format("type=\"{}\"", escape_label(type)), n);
  }
  histograms(e, s);
  e.single("tether_requests_in_flight", "gauge", "Requests being served now.", s.in_flight);
  e.single("tether_received_wire_bytes_total", "counter",
           "Bytes received as framed on the wire (compressed).", s.wire_bytes_in);
  e.single("tether_sent_wire_bytes_total", "counter", "Bytes sent as framed on the wire (compressed).",
           s.wire_bytes_out);
  e.single("tether_received_payload_bytes_total", "counter", "Message bytes received, after decompression.",
           s.payload_bytes_in);
  e.single("tether_sent_payload_bytes_total", "counter", "Message bytes sent, before compression.",
           s.payload_bytes_out);
  e.single("tether_exported_objects", "gauge", "Objects lent to peers (export tables of open connections).",
           s.exported);
  e.single("tether_proxied_objects", "gauge",
           "Proxies of peer objects held on open connections (proxy-table entries).", s.proxies);
  e.single("tether_http_requests_total", "counter", "HTTP requests answered (metrics, health, console).",
           s.http_requests);
  loop_figures(e, s);
  registry_figures(e, s.registry);
  return e.take();
}

std::string render_status_json(const metrics::Snapshot& s) {
  using nlohmann::json;
  json j;
  j["service"] = s.service;
  j["uptime_seconds"] = s.uptime_seconds;
  j["listening"] = s.listening;
  j["draining"] = s.draining;
  j["ready"] = s.ready;
  j["totals"] = {{"connections_open", s.connections_open},
                 {"connections_accepted", s.connections_accepted},
                 {"connections_refused", s.connections_refused},
                 {"connections_closed", s.connections_closed},
                 {"requests", s.requests},
                 {"errors", s.errors},
                 {"in_flight", s.in_flight},
                 {"wire_bytes_in", s.wire_bytes_in},
                 {"wire_bytes_out", s.wire_bytes_out},
                 {"payload_bytes_in", s.payload_bytes_in},
                 {"payload_bytes_out", s.payload_bytes_out},
                 {"exported", s.exported},
                 {"proxies", s.proxies},
                 {"http_requests", s.http_requests}};
  json methods = json::array();
  for (const auto& m : s.methods) {
    methods.push_back({{"method", m.method},
                       {"handler", m.handler},
                       {"calls", m.calls},
                       {"errors", m.errors},
                       {"sum_seconds", m.latency.sum_seconds},
                       {"p50", m.latency.quantile(0.5)},
                       {"p90", m.latency.quantile(0.9)},
                       {"p99", m.latency.quantile(0.99)},
                       {"p999", m.latency.quantile(0.999)}});
  }
  j["methods"] = std::move(methods);
  json conns = json::array();
  for (const auto& c : s.connections) {
    conns.push_back({{"id", c.id},
                     {"peer", c.peer},
                     {"generation", c.generation},
                     {"age_seconds", c.age_seconds},
                     {"calls", c.calls},
                     {"errors", c.errors},
                     {"in_flight", c.in_flight},
                     {"wire_bytes_in", c.wire_bytes_in},
                     {"wire_bytes_out", c.wire_bytes_out},
                     {"payload_bytes_in", c.payload_bytes_in},
                     {"payload_bytes_out", c.payload_bytes_out},
                     {"exported", c.exported},
                     {"proxies", c.proxies}});
  }
  j["connections"] = std::move(conns);
  j["errors_by_type"] = s.errors_by_type;
  json recent = json::array();
  for (const auto& e : s.recent_errors) {
    recent.push_back({{"time", e.unix_time},
                      {"peer", e.peer},
                      {"method", e.method},
                      {"handler", e.handler},
                      {"type", e.type},
                      {"message", e.message}});
  }
  j["recent_errors"] = std::move(recent);
  j["closed_by_reason"] = s.closed_by_reason;
  json loops = json::array();
  for (const auto& l : s.loops) {
    loops.push_back(
        {{"loop", l.index},
         {"lag_samples", l.lag_samples},
         {"lag_avg_seconds", l.lag_samples ? l.lag_sum_seconds / static_cast<double>(l.lag_samples) : 0.0},
         {"lag_max_seconds", l.lag_max_seconds},
         {"busy_poll_caught", l.busy_poll_caught},
         {"busy_poll_missed", l.busy_poll_missed},
         {"busy_poll_seconds", l.busy_poll_seconds},
         {"worker_queued", l.worker_queued},
         {"worker_running", l.worker_running}});
  }
  j["loops"] = std::move(loops);
  const metrics::RegistryFigures& r = s.registry;
  j["registry"] = {{"configured", r.configured},
                   {"registered", r.registered},
                   {"registry", r.registry},
                   {"last_announce", r.last_announce_unix},
                   {"last_attempt", r.last_attempt_unix},
                   {"announcements", r.announcements},
                   {"failures", r.failures},
                   {"last_error", r.last_error}};
  // Peer data (method names, messages) may hold invalid UTF-8: replaced, never thrown on.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace tether
