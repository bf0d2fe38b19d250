#pragma once
// Private: follows every key under one etcd prefix: reads it once, then watches it from the
// revision read, and reads it again whenever the watch breaks. While etcd cannot be reached
// the last known keys stay (logged once per outage), and the watch retries with backoff,
// moving to the next endpoint each time.
//
// Loop thread only. The EtcdClient must outlive the watch; destroying the watch cancels it.

#include <functional>
#include <map>
#include <string>

#include "registry/etcd_client.hpp"
#include "tether/loop/sync.hpp"
#include "tether/loop/task.hpp"
#include "tether/loop/task_group.hpp"

namespace tether::registry::detail {

/// What one line of a watch stream of the keys under `prefix` says (pure, no I/O: see
/// PrefixWatch::apply). Throws EtcdUnavailable for an error line, a line that is not a JSON
/// object, or a cancelled watch.
struct WatchLine {
  enum Kind {
    kNothing,    ///< nothing to apply (no result, or no events)
    kCompacted,  ///< the watch fell behind a compaction: read the prefix again
    kEvents,     ///< `entries`: `current` with the line's events applied
  } kind = kNothing;
  std::map<std::string, std::string> entries;
};
WatchLine parse_watch_line(const std::string& line, const std::string& prefix,
                           const std::map<std::string, std::string>& current);

class PrefixWatch {
 public:
  /// Called after every change of entries() (not for unchanged re-reads).
  using Changed = std::function<void()>;

  /// `label` names what is watched in log messages ("CALCULATOR").
  PrefixWatch(EtcdClient& client, std::string prefix, std::string label, Changed on_change);
  ~PrefixWatch();
  PrefixWatch(const PrefixWatch&) = delete;
  PrefixWatch& operator=(const PrefixWatch&) = delete;

  /// Key suffix after the prefix -> value.
  [[nodiscard]] const std::map<std::string, std::string>& entries() const noexcept { return entries_; }
  /// The prefix was read at least once.
  [[nodiscard]] bool synced() const noexcept { return synced_; }
  /// Connected to etcd now (entries() follow it live).
  [[nodiscard]] bool live() const noexcept { return live_; }
  /// Why the last attempt failed ("" if none did).
  [[nodiscard]] const std::string& last_error() const noexcept { return last_error_; }
  /// Waits until synced() or until `timeout`; returns synced().
  Task<bool> wait_synced(Duration timeout);

 private:
  static Task<void> run(PrefixWatch* self);
  /// Reads the prefix; the revision to watch from.
  Task<std::int64_t> resync();
  /// Applies one line of the watch stream; false when the watch must be re-created.
  bool apply(const std::string& line);
  void set_entries(std::map<std::string, std::string> entries);

  EtcdClient& client_;
  std::string prefix_;
  std::string label_;
  Changed on_change_;
  std::map<std::string, std::string> entries_;
  bool synced_ = false;
  bool live_ = false;
  std::string last_error_;
  Event synced_event_;
  TaskGroup tasks_;
};

}  // namespace tether::registry::detail
