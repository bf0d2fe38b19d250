#pragma once
// Private: StreamServer's state. Shared by stream_server.cpp (accepting, dispatching,
// shutdown) and supervisor.cpp (start(n) forking).

#include <sys/types.h>

#include <atomic>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tether/loop/io_watcher.hpp"
#include "tether/loop/sync.hpp"
#include "tether/loop/task_group.hpp"
#include "tether/net/stream_server.hpp"
#include "tether/stream/detail/wait_slot.hpp"

namespace tether {

struct StreamServer::Impl {
  struct Listener {
    Fd fd;
    Address addr;
    std::unique_ptr<IoWatcher> watcher;
    std::string unix_path;  // a path we created (removed on close), else empty
    dev_t dev = 0;
    ino_t ino = 0;
  };

  /// A loop that runs handlers: the server's own (inline, no thread) or a thread of its own.
  struct Worker {
    /// A connection served on this worker's loop (loop thread only).
    struct Client {
      BufferedStream::WeakRef stream;
      bool closed_by_server = false;  // close_clients()/abort_clients() closed it
    };
    // Declared before inline_group: the handlers it destroys still reach these.
    std::shared_ptr<detail::ServerStopState> stop = std::make_shared<detail::ServerStopState>();
    std::list<Client> clients;
    EventLoop* loop = nullptr;
    TaskGroup* group = nullptr;
    std::unique_ptr<TaskGroup> inline_group;  // inline worker only
    std::thread thread;
    std::atomic<std::uint64_t> accepted{0};
  };

  /// Lets other threads reach the server's loop safely: callbacks posted there check `impl`,
  /// which the destructor clears (on the server's loop) before anything is torn down.
  struct Notifier {
    Impl* impl = nullptr;
  };

  Impl(StreamServer* o, Handler h, ServerOptions opt) : owner(o), handler(std::move(h)), opts(std::move(opt)) {}
  ~Impl();

  // --- attach / accept (stream_server.cpp)
  void attach_to_current_loop();
  void serve_pending();
  void on_acceptable(Listener& l);
  /// 1: a pending connection was closed; 0: nothing pending; -1: not possible (pause).
  int shed_one(Listener& l);
  void pause_accepting();
  void resume_accepting();
  void dispatch(Fd conn, Address peer);
  void start_workers();
  void connection_done();
  void close_listeners();
  void cancel_handlers();
  void stop_workers();
  /// Requests stop on every worker's loop (once).
  void request_stop();
  /// close_clients()/abort_clients(): on every worker's loop.
  void close_clients(bool abort);
  void close_worker_clients(Worker& w, bool abort);
  static Task<void> serve_connection(Impl* s, Worker* w, Fd fd, Address peer);
  static Task<void> wait_idle(Impl* s);
  // --- start(n) (supervisor.cpp): returns the worker id in a child, kSupervisor in the parent.
  int fork_and_supervise(int processes);

  // Declared first: destroyed last (handlers and workers reference it).
  std::unique_ptr<EventLoop> owned_loop;
  StreamServer* owner;
  Handler handler;
  ServerOptions opts;
  ListenHook on_listen;
  EventLoop* loop = nullptr;
  int worker_id = 0;
  bool closed = false;
  std::atomic<bool> stopping{false};

  std::vector<std::unique_ptr<Listener>> pending;    // bound, not served yet
  std::vector<std::unique_ptr<Listener>> listeners;  // being served
  std::vector<Address> served_addresses;             // survives stop() for addresses()
  Fd spare;                                          // reserved for shedding on EMFILE
  TimerHandle pause_timer;
  bool paused = false;

  std::vector<std::unique_ptr<Worker>> workers;
  std::size_t next_worker = 0;
  std::shared_ptr<Notifier> notifier = std::make_shared<Notifier>();
  std::optional<detail::WaitList> idle_waiters;

  std::atomic<std::size_t> active{0};
  std::atomic<std::uint64_t> accepted{0}, rejected{0}, fd_exhausted{0}, shed{0}, accept_pauses{0},
      accept_errors{0}, handshake_failures{0}, handler_errors{0}, handler_timeouts{0}, cancelled{0}, closed_clients{0};
};

}  // namespace tether
