#pragma once
/// \file The Error hierarchy: every failure of an awaited operation throws one of these.

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "tether/base/bytes.hpp"
#include "tether/base/export.hpp"

namespace tether {

/// What went wrong, for callers that branch on the kind rather than the C++ type.
enum class ErrorKind {
  kDisconnected,    ///< the peer closed or reset the connection
  kTimeout,         ///< a deadline passed
  kLimitExceeded,   ///< a configured size limit was hit (buffer, frame, value)
  kProtocolError,   ///< the peer sent bytes that break the protocol
  kCancelled,       ///< the operation was cancelled locally
  kRemoteError,     ///< the peer answered with an exception
  kIncompleteRead,  ///< EOF before the requested bytes arrived
  kLimitOverrun,    ///< read_until/regex passed max_bytes without a match
  kStreamClosed,    ///< the stream was already closed when the operation started
  kUsage,           ///< the API was misused (second concurrent read, wrong thread)
  kIo,              ///< an OS error (errno) not covered above
};

TETHER_API std::string_view to_string(ErrorKind k) noexcept;

/// Base of every tether error. Safe to copy and to move across threads.
class TETHER_API Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& what) : std::runtime_error(what), kind_(kind) {}
  [[nodiscard]] ErrorKind kind() const noexcept { return kind_; }

 private:
  ErrorKind kind_;
};

class TETHER_API Disconnected : public Error {
 public:
  explicit Disconnected(const std::string& what = "connection closed")
      : Error(ErrorKind::kDisconnected, what) {}
};

class TETHER_API Timeout : public Error {
 public:
  explicit Timeout(const std::string& what = "operation timed out") : Error(ErrorKind::kTimeout, what) {}
};

class TETHER_API LimitExceeded : public Error {
 public:
  explicit LimitExceeded(const std::string& what) : Error(ErrorKind::kLimitExceeded, what) {}
};

class TETHER_API ProtocolError : public Error {
 public:
  explicit ProtocolError(const std::string& what) : Error(ErrorKind::kProtocolError, what) {}
};

class TETHER_API Cancelled : public Error {
 public:
  explicit Cancelled(const std::string& what = "operation cancelled") : Error(ErrorKind::kCancelled, what) {}
};

class TETHER_API UsageError : public Error {
 public:
  explicit UsageError(const std::string& what) : Error(ErrorKind::kUsage, what) {}
};

/// An OS-level failure; carries errno.
class TETHER_API IoError : public Error {
 public:
  IoError(int err, const std::string& context);
  [[nodiscard]] int code() const noexcept { return code_; }

 private:
  int code_;
};

/// EOF arrived before `expected` bytes; `partial` holds what was read (asyncio's
/// IncompleteReadError). For read_until, expected is 0 ("unknown").
class TETHER_API IncompleteRead : public Error {
 public:
  IncompleteRead(Bytes partial, std::size_t expected);
  [[nodiscard]] const Bytes& partial() const noexcept { return partial_; }
  [[nodiscard]] std::size_t expected() const noexcept { return expected_; }

 private:
  Bytes partial_;
  std::size_t expected_;
};

/// read_until/read_until_regex scanned `consumed` bytes (max_bytes) without finding the
/// delimiter; the data stays in the buffer (asyncio's LimitOverrunError).
class TETHER_API LimitOverrun : public Error {
 public:
  LimitOverrun(const std::string& what, std::size_t consumed)
      : Error(ErrorKind::kLimitOverrun, what), consumed_(consumed) {}
  [[nodiscard]] std::size_t consumed() const noexcept { return consumed_; }

 private:
  std::size_t consumed_;
};

/// An operation on a stream that is already closed; carries the description of what closed
/// it (empty when it was closed locally without an error).
class TETHER_API StreamClosed : public Error {
 public:
  explicit StreamClosed(const std::string& cause = {});
  [[nodiscard]] const std::string& cause() const noexcept { return cause_; }

 private:
  std::string cause_;
};

/// The peer raised an exception. `module` and `type_name` name its class (for Python,
/// e.g. "builtins" / "ValueError"); `args` holds the textual form of its arguments
/// (str args verbatim, others as their repr); `traceback` is the remote traceback text.
class TETHER_API RemoteError : public Error {
 public:
  RemoteError(std::string module, std::string type_name, std::vector<std::string> args,
              std::string traceback);
  [[nodiscard]] const std::string& module() const noexcept { return module_; }
  [[nodiscard]] const std::string& type_name() const noexcept { return type_name_; }
  /// "builtins.ValueError" style qualified name (builtins are shown without the module).
  [[nodiscard]] std::string qualified_name() const;
  [[nodiscard]] const std::vector<std::string>& args() const noexcept { return args_; }
  [[nodiscard]] const std::string& traceback() const noexcept { return traceback_; }

 private:
  std::string module_;
  std::string type_name_;
  std::vector<std::string> args_;
  std::string traceback_;
};

/// Rethrows the current exception's message as a short description ("Kind: what").
/// Usable in catch(...) blocks to log or to record why something closed.
TETHER_API std::string describe_current_exception();

}  // namespace tether
