#include "tether/base/error.hpp"

#include <fmt/format.h>

#include <cstring>
#include <exception>

namespace tether {

std::string_view to_string(ErrorKind k) noexcept {
  switch (k) {
    case ErrorKind::kDisconnected: return "Disconnected";
    case ErrorKind::kTimeout: return "Timeout";
    case ErrorKind::kLimitExceeded: return "LimitExceeded";
    case ErrorKind::kProtocolError: return "ProtocolError";
    case ErrorKind::kCancelled: return "Cancelled";
    case ErrorKind::kRemoteError: return "RemoteError";
    case ErrorKind::kIncompleteRead: return "IncompleteRead";
    case ErrorKind::kLimitOverrun: return "LimitOverrun";
    case ErrorKind::kStreamClosed: return "StreamClosed";
    case ErrorKind::kUsage: return "UsageError";
    case ErrorKind::kIo: return "IoError";
  }
  return "Error";
}

IoError::IoError(int err, const std::string& context)
    : Error(ErrorKind::kIo, fmt::format("{}: {}", context, std::strerror(err))), code_(err) {}

IncompleteRead::IncompleteRead(Bytes partial, std::size_t expected)
    : Error(ErrorKind::kIncompleteRead,
            expected ? fmt::format("{} bytes read on a total of {} expected bytes", partial.size(), expected)
                     : fmt::format("{} bytes read before EOF, delimiter not found", partial.size())),
      partial_(std::move(partial)),
      expected_(expected) {}

StreamClosed::StreamClosed(const std::string& cause)
    : Error(ErrorKind::kStreamClosed, cause.empty() ? std::string("stream is closed")
                                                    : "stream is closed: " + cause),
      cause_(cause) {}

RemoteError::RemoteError(std::string module, std::string type_name, std::vector<std::string> args,
                         std::string traceback)
    : Error(ErrorKind::kRemoteError,
            fmt::format("{}{}{}{}{}", module == "builtins" ? "" : module, module == "builtins" ? "" : ".",
                        type_name, args.empty() ? "" : ": ", fmt::join(args, ", "))),
      module_(std::move(module)),
      type_name_(std::move(type_name)),
      args_(std::move(args)),
      traceback_(std::move(traceback)) {}

std::string RemoteError::qualified_name() const {
  return module_ == "builtins" ? type_name_ : module_ + "." + type_name_;
}

std::string describe_current_exception() {
  try {
    throw;
  } catch (const Error& e) {
    return fmt::format("{}: {}", to_string(e.kind()), e.what());
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown exception";
  }
}

}  // namespace tether
