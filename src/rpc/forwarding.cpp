#include "rpc/forwarding.hpp"

namespace tether::rpc::detail {

// Each operation is one request to the object's home connection; its result (or exception)
// is the answer here. Arguments that are this connection's proxies travel to the other one as
// forwarding objects in turn, and its own objects come back home as Netrefs.

Task<Any> ForwardingObject::get_attr_async(CallContext&, std::string name) {
  Any v = co_await target_.getattr(std::move(name));
  co_return v;
}

Task<void> ForwardingObject::set_attr_async(CallContext&, std::string name, Any value) {
  co_await target_.setattr(std::move(name), std::move(value));
}

Task<void> ForwardingObject::del_attr_async(CallContext&, std::string name) {
  co_await target_.delattr(std::move(name));
}

Task<Any> ForwardingObject::call_attr(CallContext&, std::string_view name, std::vector<Any> args, Kwargs kwargs) {
  std::string n(name);
  Any v = co_await target_.callattr(std::move(n), std::move(args), std::move(kwargs));
  co_return v;
}

Task<Any> ForwardingObject::call(CallContext&, std::vector<Any> args, Kwargs kwargs) {
  Any v = co_await target_.call(std::move(args), std::move(kwargs));
  co_return v;
}

Task<std::string> ForwardingObject::repr_async(CallContext&) {
  std::string s = co_await target_.repr();
  co_return s;
}

Task<std::string> ForwardingObject::str_async(CallContext&) {
  std::string s = co_await target_.str();
  co_return s;
}

Task<std::int64_t> ForwardingObject::hash_async(CallContext&) {
  std::int64_t h = co_await target_.hash();
  co_return h;
}

Task<std::vector<std::string>> ForwardingObject::dir_async(CallContext&) {
  std::vector<std::string> names = co_await target_.dir();
  co_return names;
}

Task<std::vector<std::string>> ForwardingObject::inspect_async(CallContext&) {
  std::vector<std::string> names = co_await target_.inspect();
  co_return names;
}

Task<bool> ForwardingObject::instance_check_async(CallContext&, brine::Value other_id_pack) {
  bool yes = co_await target_.instance_check(std::move(other_id_pack));
  co_return yes;
}

}  // namespace tether::rpc::detail
