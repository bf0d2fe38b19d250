#pragma once
/// \file CallInterceptor: before/after hooks around the calls a connection serves (server
/// side) and the requests it sends (client side), for logging, authorization decisions and
/// trace ids (ConnectionOptions::interceptors; docs/observability.md#interceptors).
///
/// Which requests: every request a connection serves or sends, whatever its handler
/// (CALLATTR, CALL, GETATTR, SETATTR, DELATTR, GETROOT, PING, STR, REPR, DIR, ...), except DEL
/// and CLOSE (no reply is awaited for them) and a request refused while it was decoded (it
/// never reaches a handler).
///
/// Order: with several interceptors, `before` runs in the order they are listed and `after`
/// in the reverse order, for exactly those whose `before` ran (the one that denied included).
///
/// Denying: a `before` that returns Decision::deny(...) stops the chain; the call is not
/// made. Served side: the peer gets PermissionError(message) as the call's exception and the
/// connection stays open. Sending side: the request is not sent, the caller gets
/// PyError("PermissionError", message) at once.
///
/// Exceptions: an exception from `before` fails the call as a deny does (the peer, or the
/// local caller, gets that exception instead of PermissionError): a broken authorization
/// hook never lets a call through. An exception from `after` is logged and dropped (the
/// reply is already on its way).
///
/// Cost: with no interceptor the connection checks one vector for emptiness per request.
/// With one, each request builds a CallInfo, its arguments' repr capped at
/// ConnectionOptions::interceptor_repr_limit bytes, and reads the steady clock twice.
///
/// Both hooks run on the connection's loop thread, inline (they must not block).

#include <cstdint>
#include <string>

#include "tether/base/export.hpp"
#include "tether/rpc/protocol.hpp"

namespace tether::rpc {

/// Which side of a call an interceptor sees.
enum class CallSide : std::uint8_t {
  kServed,  ///< a request from the peer that this connection serves
  kSent,    ///< a request this connection sends to the peer
};

/// One call, as the interceptors see it.
struct CallInfo {
  CallSide side = CallSide::kServed;
  Handler handler = Handler::kPing;
  /// The attribute named by CALLATTR, GETATTR, SETATTR and DELATTR as sent (before the access
  /// check: "add", not "exposed_add"); empty for other handlers.
  std::string name;
  /// Python-like repr of the arguments ("(1, 2)"; "(1, 2, x=3)" with keyword arguments; the
  /// target object is left out), at most interceptor_repr_limit bytes (cut text ends in
  /// "...").
  std::string args;
  /// The other end of the connection ("127.0.0.1:50312", "unix:/run/x.sock", "stream") —
  /// ConnectionOptions::peer.
  std::string peer;
  /// The connection's logged name (ConnectionOptions::name).
  std::string connection;
  /// Free for interceptors: set in `before`, read in `after` (and by later interceptors).
  std::string trace_id;
  /// Steady clock at the first `before` (ns).
  std::int64_t start_nanos = 0;
};

/// How a call ended, as `after` sees it.
struct CallOutcome {
  /// From the first `before` to the reply being queued (served) or received (sent), ns.
  std::int64_t nanos = 0;
  bool ok = true;
  /// An interceptor's `before` refused it (or threw): the call was not made.
  bool denied = false;
  /// When not ok: the Python type name of the exception ("ValueError",
  /// "PermissionError", "mymod.MyError") and its message.
  std::string error_type;
  std::string error_message;
};

/// What `before` decides.
struct Decision {
  bool allow = true;
  /// Deny: the PermissionError's message.
  std::string message;
  static Decision proceed() { return Decision{}; }
  static Decision deny(std::string why) { return Decision{false, std::move(why)}; }
};

class TETHER_API CallInterceptor {
 public:
  virtual ~CallInterceptor();
  /// Before the call is made (served: before the handler runs; sent: before the request is
  /// encoded). May change info.trace_id. The default allows.
  virtual Decision before(CallInfo& info);
  /// After it (served: once the reply or exception is queued; sent: once the reply, an
  /// exception, a timeout or the connection's end completed it). The default does nothing.
  virtual void after(const CallInfo& info, const CallOutcome& outcome);
};

}  // namespace tether::rpc
