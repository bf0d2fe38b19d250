#pragma once
// Private: a non-blocking UDP socket on a loop, for the registry's server and client.
//
// Loop thread only. The socket is closed by its Fd when the UdpSocket is destroyed, after the
// watcher has been removed from the loop.

#include <cstddef>
#include <memory>
#include <optional>
#include <span>

#include "tether/base/bytes.hpp"
#include "tether/base/fd.hpp"
#include "tether/base/function.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/loop/io_watcher.hpp"
#include "tether/loop/sync.hpp"
#include "tether/loop/task.hpp"
#include "tether/net/address.hpp"

namespace tether::registry::detail {

class UdpSocket {
 public:
  /// A socket bound to `local` (port 0: the kernel picks one). Throws IoError naming it.
  UdpSocket(EventLoop& loop, const Address& local);
  ~UdpSocket();
  UdpSocket(const UdpSocket&) = delete;
  UdpSocket& operator=(const UdpSocket&) = delete;

  /// SO_BROADCAST (needed to send to 255.255.255.255 or a subnet's broadcast address).
  void set_broadcast(bool on);
  /// Sends one datagram; false (errno kept in last_error()) if the kernel refused it now.
  bool send_to(std::span<const std::uint8_t> data, const Address& to);

  struct Datagram {
    Bytes data;            ///< at most the `max` given to try_receive
    std::size_t size = 0;  ///< the datagram's real size (larger than data.size() if truncated)
    Address from;
  };
  /// One datagram if one is waiting (never blocks); nullopt otherwise or on an error.
  std::optional<Datagram> try_receive(std::size_t max);
  /// Waits until a datagram may be read, at most `timeout`; false when the time ran out.
  /// One waiter at a time. Cancelling the task just ends the wait.
  Task<bool> readable(Duration timeout);
  /// Calls fn (from the loop) whenever the socket is readable, until cleared with an empty
  /// function. Not together with readable().
  void on_readable(UniqueFunction<void()> fn);

  [[nodiscard]] Address local_address() const;
  [[nodiscard]] int last_error() const noexcept { return last_error_; }
  [[nodiscard]] int fd() const noexcept { return fd_.get(); }

 private:
  EventLoop& loop_;
  Fd fd_;
  std::unique_ptr<IoWatcher> watcher_;
  UniqueFunction<void()> on_readable_;
  Event ready_;
  int last_error_ = 0;
};

}  // namespace tether::registry::detail
