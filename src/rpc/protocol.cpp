#include "tether/rpc/protocol.hpp"

namespace tether::rpc {

std::string_view handler_name(Handler h) noexcept {
  switch (h) {
    case Handler::kPing: return "PING";
    case Handler::kClose: return "CLOSE";
    case Handler::kGetRoot: return "GETROOT";
    case Handler::kGetAttr: return "GETATTR";
    case Handler::kDelAttr: return "DELATTR";
    case Handler::kSetAttr: return "SETATTR";
    case Handler::kCall: return "CALL";
    case Handler::kCallAttr: return "CALLATTR";
    case Handler::kRepr: return "REPR";
    case Handler::kStr: return "STR";
    case Handler::kCmp: return "CMP";
    case Handler::kHash: return "HASH";
    case Handler::kDir: return "DIR";
    case Handler::kPickle: return "PICKLE";
    case Handler::kDel: return "DEL";
    case Handler::kInspect: return "INSPECT";
    case Handler::kBuffIter: return "BUFFITER";
    case Handler::kOldSlicing: return "OLDSLICING";
    case Handler::kCtxExit: return "CTXEXIT";
    case Handler::kInstanceCheck: return "INSTANCECHECK";
  }
  return "UNKNOWN";
}

}  // namespace tether::rpc
