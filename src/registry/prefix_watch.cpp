#include "registry/prefix_watch.hpp"

#include "registry/backoff.hpp"
#include "tether/base/log.hpp"
#include "tether/loop/time.hpp"

namespace tether::registry::detail {

PrefixWatch::PrefixWatch(EtcdClient& client, std::string prefix, std::string label, Changed on_change)
    : client_(client),
      prefix_(std::move(prefix)),
      label_(std::move(label)),
      on_change_(std::move(on_change)),
      tasks_(client.loop()) {
  tasks_.spawn(run(this));
}

PrefixWatch::~PrefixWatch() { tasks_.cancel_all(); }

Task<bool> PrefixWatch::wait_synced(Duration timeout) {
  if (synced_) co_return true;
  try {
    co_await with_timeout(timeout, synced_event_.wait());
  } catch (const Timeout&) {
  }
  co_return synced_;
}

void PrefixWatch::set_entries(std::map<std::string, std::string> entries) {
  const bool changed = entries != entries_ || !synced_;
  entries_ = std::move(entries);
  synced_ = true;
  synced_event_.set();
  if (changed && on_change_) on_change_();
}

Task<std::int64_t> PrefixWatch::resync() {
  EtcdClient::Range r = co_await client_.get_prefix(prefix_);
  std::map<std::string, std::string> entries;
  for (EtcdKeyValue& kv : r.kvs) {
    if (kv.key.size() > prefix_.size()) entries[kv.key.substr(prefix_.size())] = std::move(kv.value);
  }
  set_entries(std::move(entries));
  co_return r.revision;
}

WatchLine parse_watch_line(const std::string& line, const std::string& prefix,
                           const std::map<std::string, std::string>& current) {
  WatchLine out;
  nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
  if (!j.is_object()) throw EtcdUnavailable("etcd watch: a line that is not JSON: " + line.substr(0, 200));
  if (j.contains("error")) {
    const nlohmann::json& e = j["error"];
    throw EtcdUnavailable("etcd watch failed: " +
                          (json_str(e, "message").empty() ? e.dump() : json_str(e, "message")));
  }
  auto result = j.find("result");
  if (result == j.end() || !result->is_object()) return out;
  if (json_int(*result, "compact_revision") > 0) {
    out.kind = WatchLine::kCompacted;
    return out;
  }
  if (auto c = result->find("canceled"); c != result->end() && c->is_boolean() && c->get<bool>()) {
    throw EtcdUnavailable("etcd cancelled the watch: " + json_str(*result, "cancel_reason"));
  }
  auto events = result->find("events");
  if (events == result->end() || !events->is_array()) return out;
  out.kind = WatchLine::kEvents;
  out.entries = current;
  for (const nlohmann::json& ev : *events) {
    if (!ev.is_object() || !ev.contains("kv") || !ev["kv"].is_object()) continue;
    const nlohmann::json& kv = ev["kv"];
    std::optional<std::string> key = base64_decode(json_str(kv, "key"));
    if (!key || key->size() <= prefix.size() || key->compare(0, prefix.size(), prefix) != 0) continue;
    std::string suffix = key->substr(prefix.size());
    if (json_str(ev, "type") == "DELETE") {
      out.entries.erase(suffix);
    } else {
      out.entries[suffix] = base64_decode(json_str(kv, "value")).value_or(std::string());
    }
  }
  return out;
}

bool PrefixWatch::apply(const std::string& line) {
  WatchLine w = parse_watch_line(line, prefix_, entries_);
  if (w.kind == WatchLine::kCompacted) {
    TETHER_LOG_INFO("registry: etcd watch of {} fell behind a compaction; reading it again", label_);
    return false;
  }
  if (w.kind == WatchLine::kEvents) set_entries(std::move(w.entries));
  return true;
}

Task<void> PrefixWatch::run(PrefixWatch* self) {
  EtcdClient& client = self->client_;
  const EtcdOptions& opt = client.options();
  Backoff backoff(opt.backoff_initial, opt.backoff_max);
  bool outage = false;
  for (;;) {
    std::string failure;
    try {
      const std::int64_t revision = co_await self->resync();
      if (outage) {
        TETHER_LOG_WARN("registry: etcd reachable again at {}; {} has {} endpoint(s)",
                        client.endpoint(client.current()), self->label_, self->entries_.size());
        outage = false;
      }
      self->live_ = true;
      self->last_error_.clear();
      backoff.reset();
      const std::size_t member = client.current();
      std::unique_ptr<HttpTransfer> watch = client.open_watch(self->prefix_, revision + 1);
      bool resync = false;
      while (!resync) {
        std::optional<std::string> line;
        bool silent = false;
        try {
          line = co_await with_timeout(opt.watch_check, watch->next_line());
        } catch (const Timeout&) {
          silent = true;
        }
        if (silent) {
          // A quiet watch: make sure its member still answers (a linearizable read needs a leader).
          nlohmann::json probe;
          probe["key"] = base64_encode(self->prefix_);
          probe["count_only"] = true;
          nlohmann::json alive = co_await client.call_at(member, std::string("kv/range"), std::move(probe));
          (void)alive;
          continue;
        }
        if (!line) {
          HttpResponse end = co_await watch->finish();  // throws the transport error, if any
          throw EtcdUnavailable("etcd at " + client.endpoint(member) + " ended the watch (HTTP " +
                                std::to_string(end.status) + ")");
        }
        if (line->empty()) continue;
        resync = !self->apply(*line);
      }
    } catch (const std::exception& e) {  // tether errors, and nlohmann's on malformed JSON
      failure = e.what();
    }
    self->live_ = false;
    if (failure.empty()) continue;  // a resync without an outage
    self->last_error_ = failure;
    if (!outage) {
      TETHER_LOG_WARN("registry: etcd unreachable ({}); keeping the {} last known endpoint(s) of {}", failure,
                      self->entries_.size(), self->label_);
      outage = true;
    } else {
      TETHER_LOG_DEBUG("registry: etcd still unreachable for {}: {}", self->label_, failure);
    }
    client.rotate();
    co_await sleep(backoff.next());
  }
}

}  // namespace tether::registry::detail
