#pragma once
/// \file CallObserver: what a connection tells an observer about the requests it serves
/// (ConnectionOptions::observer). The service layer's metrics (tether/service/metrics.hpp)
/// implement it; the rpc layer only calls it, at two points of each served request.
///
/// Both calls run on the connection's loop thread, inline in the request's coroutine, so an
/// implementation must be cheap and must not throw (noexcept) or block.

#include <cstdint>
#include <exception>
#include <string>
#include <string_view>

#include "tether/base/export.hpp"
#include "tether/channel/channel.hpp"
#include "tether/rpc/protocol.hpp"

namespace tether::rpc {

/// One served request, as it finished (its reply queued).
struct CallRecord {
  Handler handler = Handler::kPing;
  /// CALLATTR: the attribute name the request reached (after the access check, e.g.
  /// "exposed_add"); the name as sent if the check refused it. Empty for other handlers.
  std::string_view name;
  /// From the request's start to its reply being queued.
  std::int64_t nanos = 0;
  /// What the request raised (null: it succeeded).
  const std::exception_ptr* error = nullptr;
  /// The connection's figures after the reply was queued.
  const ChannelStats* channel = nullptr;
  /// Objects in the export table; proxy-table entries (live proxies and dead ones not yet
  /// pruned: counted in constant time).
  std::size_t exported = 0;
  std::size_t proxies = 0;
  Generation generation = Generation::kAuto;
};

class TETHER_API CallObserver {
 public:
  virtual ~CallObserver();
  /// A request starts being served.
  virtual void on_start() noexcept = 0;
  /// It finished: its reply (or exception) is queued.
  virtual void on_end(const CallRecord& record) noexcept = 0;
};

/// The Python type an exception reply names for `e` ("ValueError", "mymod.MyError"), as the
/// peer sees it.
TETHER_API std::string python_type_of(const std::exception_ptr& e);

}  // namespace tether::rpc
