// ServerMetrics: per-loop shards and per-connection cells written by one thread each, merged
// on read (see tether/service/metrics.hpp).

#include "tether/service/metrics.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <string_view>
#include <utility>

#include "tether/loop/event_loop.hpp"
#include "tether/rpc/protocol.hpp"

namespace tether {

namespace metrics {

namespace {
constexpr std::array<std::int64_t, kFiniteBuckets> make_bounds() {
  std::array<std::int64_t, kFiniteBuckets> b{};
  std::int64_t decade = 1000;  // 1 µs
  std::size_t i = 0;
  for (int d = 0; d < 8; ++d, decade *= 10) {
    for (std::int64_t m = 1; m <= 9; ++m) b[i++] = m * decade;
  }
  b[i] = decade;  // 100 s
  return b;
}
constexpr std::array<std::int64_t, kFiniteBuckets> kBounds = make_bounds();
}  // namespace

const std::array<std::int64_t, kFiniteBuckets>& bucket_bounds() noexcept { return kBounds; }

std::size_t bucket_of(std::int64_t nanos) noexcept {
  return static_cast<std::size_t>(std::lower_bound(kBounds.begin(), kBounds.end(), nanos) - kBounds.begin());
}

double Histogram::quantile(double q) const noexcept {
  if (count == 0) return 0;
  const double rank = std::clamp(q, 0.0, 1.0) * static_cast<double>(count);
  double seen = 0;
  for (std::size_t i = 0; i < kBuckets; ++i) {
    const auto c = static_cast<double>(counts[i]);
    if (c > 0 && seen + c >= rank) {
      const double lo = i == 0 ? 0.0 : static_cast<double>(kBounds[i - 1]);
      const double hi = i < kFiniteBuckets ? static_cast<double>(kBounds[i]) : lo;
      return (lo + (hi - lo) * ((rank - seen) / c)) / 1e9;
    }
    seen += c;
  }
  return static_cast<double>(kBounds.back()) / 1e9;
}

void Histogram::merge(const Histogram& other) noexcept {
  for (std::size_t i = 0; i < kBuckets; ++i) counts[i] += other.counts[i];
  count += other.count;
  sum_seconds += other.sum_seconds;
}

}  // namespace metrics

namespace {

using metrics::Counter;

std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/// One (handler, method) of one loop.
struct MethodCell {
  std::string handler;
  std::string method;
  Counter calls, errors, sum_ns;
  std::array<Counter, metrics::kBuckets> buckets;

  void record(std::int64_t nanos, bool failed) noexcept {
    buckets[metrics::bucket_of(nanos)].add();
    sum_ns.add(static_cast<std::uint64_t>(std::max<std::int64_t>(nanos, 0)));
    calls.add();
    if (failed) errors.add();
  }
  [[nodiscard]] metrics::MethodFigures read() const {
    metrics::MethodFigures f;
    f.handler = handler;
    f.method = method;
    f.errors = errors.get();
    for (std::size_t i = 0; i < metrics::kBuckets; ++i) {
      f.latency.counts[i] = buckets[i].get();
      f.latency.count += f.latency.counts[i];
    }
    f.calls = f.latency.count;  // consistent with the buckets even while being written
    f.latency.sum_seconds = static_cast<double>(sum_ns.get()) / 1e9;
    return f;
  }
};

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return out;
}

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

constexpr std::size_t kHandlers = 21;

}  // namespace

struct ServerMetrics::Shard {
  /// Taken by the loop's thread to insert a name, and by readers.
  std::mutex mu;
  std::array<std::unique_ptr<MethodCell>, kHandlers> by_handler;
  std::unordered_map<std::string, std::unique_ptr<MethodCell>, StringHash, std::equal_to<>> named;
  MethodCell other;    // callattr beyond kMaxMethods names
  MethodCell unknown;  // callattr of a name the access check refused
  Counter started, finished;
  std::size_t index = 0;
  std::shared_ptr<const tether::LoopFigures> loop;

  Shard() {
    for (std::size_t h = 0; h < kHandlers; ++h) {
      by_handler[h] = std::make_unique<MethodCell>();
      by_handler[h]->handler = lower(rpc::handler_name(static_cast<rpc::Handler>(h)));
    }
    other.handler = unknown.handler = "callattr";
    other.method = "(other)";
    unknown.method = "(unknown)";
  }

  /// The cell of a callattr name (loop thread).
  MethodCell& named_cell(std::string_view name, std::string_view prefix) {
    auto it = named.find(name);
    if (it != named.end()) return *it->second;
    if (named.size() >= kMaxMethods) return other;
    auto cell = std::make_unique<MethodCell>();
    cell->handler = "callattr";
    cell->method =
        std::string(!prefix.empty() && name.starts_with(prefix) ? name.substr(prefix.size()) : name);
    MethodCell& ref = *cell;
    std::lock_guard<std::mutex> lock(mu);
    named.emplace(std::string(name), std::move(cell));
    return ref;
  }
};

struct ServerMetrics::Conn final : rpc::CallObserver {
  std::shared_ptr<ServerMetrics> owner;
  Shard* shard = nullptr;
  std::uint64_t id = 0;
  std::string peer;
  std::int64_t opened_ns = 0;
  Counter started, calls, errors, generation;
  Counter wire_in, wire_out, payload_in, payload_out, exported, proxies;
  // The last callattr name and its cell: a client calling one method over and over skips the
  // hash lookup.
  std::string last_name;
  MethodCell* last_cell = nullptr;

  MethodCell& callattr_cell(std::string_view name) {
    if (last_cell && name == last_name) return *last_cell;
    MethodCell& cell = shard->named_cell(name, owner->prefix_);
    if (&cell != &shard->other) {
      last_name.assign(name);
      last_cell = &cell;
    }
    return cell;
  }

  void on_start() noexcept override {
    started.add();
    shard->started.add();
  }

  void on_end(const rpc::CallRecord& r) noexcept override {
    const auto h = static_cast<std::size_t>(r.handler);
    MethodCell* cell = nullptr;
    std::string type;
    try {
      if (r.error) type = rpc::python_type_of(*r.error);
      if (r.handler == rpc::Handler::kCallAttr) {
        cell = type == "AttributeError" ? &shard->unknown : &callattr_cell(r.name);
      } else if (h < kHandlers) {
        cell = shard->by_handler[h].get();
      }
      if (cell) cell->record(r.nanos, r.error != nullptr);
      if (r.error) owner->record_error(*this, r, cell ? cell->method : std::string(), type);
    } catch (...) {
      // out of memory while counting: the figure is lost, the call is not
    }
    calls.add();
    if (r.error) errors.add();
    if (r.channel) {
      wire_in.set(r.channel->wire_bytes_in);
      wire_out.set(r.channel->wire_bytes_out);
      payload_in.set(r.channel->payload_bytes_in);
      payload_out.set(r.channel->payload_bytes_out);
    }
    exported.set(r.exported);
    proxies.set(r.proxies);
    generation.set(r.generation == rpc::Generation::k5 ? 5 : r.generation == rpc::Generation::k6 ? 6 : 0);
    shard->finished.add();
  }

  [[nodiscard]] metrics::ConnectionFigures read(std::int64_t now) const {
    metrics::ConnectionFigures f;
    f.id = id;
    f.peer = peer;
    f.generation = static_cast<int>(generation.get());
    f.age_seconds = static_cast<double>(now - opened_ns) / 1e9;
    f.calls = calls.get();
    f.errors = errors.get();
    const std::uint64_t s = started.get();
    f.in_flight = s > f.calls ? s - f.calls : 0;
    f.wire_bytes_in = wire_in.get();
    f.wire_bytes_out = wire_out.get();
    f.payload_bytes_in = payload_in.get();
    f.payload_bytes_out = payload_out.get();
    f.exported = exported.get();
    f.proxies = proxies.get();
    return f;
  }
};

ServerMetrics::ServerMetrics(std::string service, std::string exposed_prefix)
    : service_(std::move(service)), prefix_(std::move(exposed_prefix)), started_ns_(now_ns()) {
  recent_.reserve(kRecentErrors);
}

ServerMetrics::~ServerMetrics() = default;

ServerMetrics::Shard& ServerMetrics::shard_for(EventLoop& loop) {
  std::unique_ptr<Shard>& s = shards_[&loop];
  if (!s) {
    s = std::make_unique<Shard>();
    s->index = shards_.size() - 1;
    s->loop = loop.figures();
  }
  return *s;
}

std::shared_ptr<rpc::CallObserver> ServerMetrics::open_connection(EventLoop& loop, const std::string& peer) {
  auto c = std::make_shared<Conn>();
  c->owner = shared_from_this();
  c->peer = peer;
  c->opened_ns = now_ns();
  std::lock_guard<std::mutex> lock(mu_);
  c->shard = &shard_for(loop);
  c->id = next_id_++;
  ++accepted_;
  open_[c.get()] = c;
  return c;
}

void ServerMetrics::watch_loop(EventLoop& loop) {
  std::lock_guard<std::mutex> lock(mu_);
  shard_for(loop);
}

void ServerMetrics::set_registry(std::string registry) {
  std::lock_guard<std::mutex> lock(mu_);
  registry_.configured = true;
  registry_.registry = std::move(registry);
  unregistered_.store(!registry_.registered, std::memory_order_relaxed);
}

void ServerMetrics::record_announcement(bool acknowledged, const std::string& error) {
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  std::lock_guard<std::mutex> lock(mu_);
  registry_.configured = true;
  registry_.registered = acknowledged;
  unregistered_.store(!acknowledged, std::memory_order_relaxed);
  registry_.last_attempt_unix = now;
  if (acknowledged) {
    registry_.last_announce_unix = now;
    ++registry_.announcements;
    registry_.last_error.clear();
  } else {
    ++registry_.failures;
    registry_.last_error = error;
  }
}

void ServerMetrics::close_connection(const std::shared_ptr<rpc::CallObserver>& observer,
                                     std::string_view reason) {
  const auto* c = static_cast<const Conn*>(observer.get());
  if (!c) return;
  std::shared_ptr<Conn> keep;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = open_.find(c);
    if (it == open_.end()) return;
    keep = std::move(it->second);
    open_.erase(it);
    ++closed_;
    auto r = closed_by_reason_.find(reason);
    if (r == closed_by_reason_.end()) r = closed_by_reason_.emplace(std::string(reason), 0).first;
    ++r->second;
    closed_bytes_[0] += c->wire_in.get();
    closed_bytes_[1] += c->wire_out.get();
    closed_bytes_[2] += c->payload_in.get();
    closed_bytes_[3] += c->payload_out.get();
  }
  keep->owner.reset();  // outside the lock: this may be the last reference to *this
}

void ServerMetrics::count_refused() noexcept { refused_.fetch_add(1, std::memory_order_relaxed); }

void ServerMetrics::count_http_request() noexcept { http_requests_.fetch_add(1, std::memory_order_relaxed); }

void ServerMetrics::record_error(const Conn& conn, const rpc::CallRecord& record, const std::string& method,
                                 const std::string& type) {
  metrics::ErrorEvent e;
  e.unix_time = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  e.peer = conn.peer;
  e.method = method;
  e.handler = lower(rpc::handler_name(record.handler));
  e.type = type;
  try {
    std::rethrow_exception(*record.error);
  } catch (const std::exception& x) {
    e.message = x.what();
  } catch (...) {
    e.message = "unknown C++ exception";
  }
  if (e.message.size() > 1024) e.message.resize(1024);
  std::lock_guard<std::mutex> lock(mu_);
  ++errors_by_type_[type];
  if (recent_.size() < kRecentErrors) {
    recent_.push_back(std::move(e));
  } else {
    recent_[recent_next_] = std::move(e);
  }
  recent_next_ = (recent_next_ + 1) % kRecentErrors;
}

metrics::Snapshot ServerMetrics::snapshot() const {
  metrics::Snapshot s;
  const std::int64_t now = now_ns();
  s.service = service_;
  s.uptime_seconds = static_cast<double>(now - started_ns_) / 1e9;
  s.listening = listening_.load(std::memory_order_relaxed);
  s.draining = draining_.load(std::memory_order_relaxed);
  s.ready = ready();
  s.connections_refused = refused_.load(std::memory_order_relaxed);
  s.http_requests = http_requests_.load(std::memory_order_relaxed);
  std::map<std::pair<std::string, std::string>, metrics::MethodFigures> merged;
  auto add = [&merged](const MethodCell& cell) {
    metrics::MethodFigures f = cell.read();
    if (f.calls == 0) return;
    metrics::MethodFigures& m = merged[{f.handler, f.method}];
    if (m.handler.empty()) {
      m = std::move(f);
    } else {
      m.calls += f.calls;
      m.errors += f.errors;
      m.latency.merge(f.latency);
    }
  };
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [key, shard] : shards_) {
    if (shard->loop) {
      const tether::LoopFigures& lf = *shard->loop;
      metrics::LoopThread t;
      t.index = shard->index;
      t.lag_samples = lf.lag_samples.load(std::memory_order_relaxed);
      t.lag_sum_seconds = static_cast<double>(lf.lag_sum_nanos.load(std::memory_order_relaxed)) / 1e9;
      t.lag_max_seconds = static_cast<double>(lf.lag_max_nanos.load(std::memory_order_relaxed)) / 1e9;
      t.busy_poll_caught = lf.busy_poll_caught.load(std::memory_order_relaxed);
      t.busy_poll_missed = lf.busy_poll_missed.load(std::memory_order_relaxed);
      t.busy_poll_seconds = static_cast<double>(lf.busy_poll_nanos.load(std::memory_order_relaxed)) / 1e9;
      t.worker_queued = lf.worker_queued.load(std::memory_order_relaxed);
      t.worker_running = lf.worker_running.load(std::memory_order_relaxed);
      s.loops.push_back(t);
    }
    const std::uint64_t finished = shard->finished.get();
    const std::uint64_t started = shard->started.get();
    s.in_flight += started > finished ? started - finished : 0;
    std::lock_guard<std::mutex> shard_lock(shard->mu);
    for (const auto& cell : shard->by_handler) add(*cell);
    for (const auto& [name, cell] : shard->named) add(*cell);
    add(shard->other);
    add(shard->unknown);
  }
  for (auto& [key, f] : merged) {
    s.requests += f.calls;
    s.errors += f.errors;
    s.methods.push_back(std::move(f));
  }
  s.connections_accepted = accepted_;
  s.connections_closed = closed_;
  s.wire_bytes_in = closed_bytes_[0];
  s.wire_bytes_out = closed_bytes_[1];
  s.payload_bytes_in = closed_bytes_[2];
  s.payload_bytes_out = closed_bytes_[3];
  for (const auto& [key, conn] : open_) {
    metrics::ConnectionFigures f = conn->read(now);
    s.wire_bytes_in += f.wire_bytes_in;
    s.wire_bytes_out += f.wire_bytes_out;
    s.payload_bytes_in += f.payload_bytes_in;
    s.payload_bytes_out += f.payload_bytes_out;
    s.exported += f.exported;
    s.proxies += f.proxies;
    s.connections.push_back(std::move(f));
  }
  std::sort(s.connections.begin(), s.connections.end(),
            [](const auto& a, const auto& b) { return a.id < b.id; });
  s.connections_open = s.connections.size();
  s.errors_by_type = errors_by_type_;
  s.closed_by_reason.insert(closed_by_reason_.begin(), closed_by_reason_.end());
  s.registry = registry_;
  std::sort(s.loops.begin(), s.loops.end(), [](const auto& a, const auto& b) { return a.index < b.index; });
  for (std::size_t i = 0; i < recent_.size(); ++i) {
    s.recent_errors.push_back(
        recent_[(recent_.size() < kRecentErrors ? i : (recent_next_ + i) % kRecentErrors)]);
  }
  return s;
}

}  // namespace tether
