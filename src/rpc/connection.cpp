#include "tether/rpc/connection.hpp"

#include "rpc/connection_core.hpp"

namespace tether {

using rpc::detail::ConnectionCore;

Connection::Connection(std::unique_ptr<Channel> channel, ObjectPtr root, ConnectionOptions options)
    : core_(std::make_shared<ConnectionCore>(std::move(channel), std::move(root), std::move(options))) {
  core_->set_self(core_);
}

Connection::~Connection() {
  if (core_) core_->close_now(nullptr);
}

void Connection::start() { core_->start(); }

Task<Netref> Connection::root() { return core_->root(); }

namespace {
Task<void> ping_impl(std::shared_ptr<ConnectionCore> core, std::string data) {
  Any echo = co_await core->sync_request(rpc::Handler::kPing, make_args(brine::Value(data)));
  if (!echo.is_value() || !echo.value().is_str() || echo.value().as_str() != data) {
    throw ProtocolError("ping: the peer echoed something else");
  }
}
}  // namespace

// Not a coroutine: g++ 12 mishandles coroutine parameters initialised from default arguments.
Task<void> Connection::ping(std::string data) {
  if (data.empty()) {
    for (int i = 0; i < 20; ++i) data += "abcdefghijklmnopqrstuvwxyz";  // what RPyC's ping sends
  }
  return ping_impl(core_, std::move(data));
}

Task<Any> Connection::request(rpc::Handler handler, std::vector<Any> args) {
  return core_->sync_request(handler, std::move(args));
}

AsyncResult Connection::async_request(rpc::Handler handler, std::vector<Any> args) {
  return AsyncResult(core_->send_request(handler, std::move(args)));
}

Task<void> Connection::close() { return core_->close_gracefully(); }

void Connection::abort() { core_->close_now(std::make_exception_ptr(Disconnected("connection aborted"))); }

void Connection::refuse(std::exception_ptr why) {
  if (!why) throw UsageError("tether::Connection::refuse: no exception given");
  core_->refuse(std::move(why));
}

bool Connection::closed() const noexcept { return core_->closed(); }

Task<void> Connection::wait_closed() { return core_->wait_closed(); }

std::exception_ptr Connection::error() const noexcept { return core_->error(); }

void Connection::set_close_callback(std::function<void()> fn) { core_->set_close_callback(std::move(fn)); }

std::size_t Connection::serving() const noexcept { return core_->serving(); }

void Connection::set_idle_callback(std::function<void()> fn) { core_->set_idle_callback(std::move(fn)); }

void Connection::set_context(std::any value) { core_->context() = std::move(value); }

const std::any& Connection::context() const noexcept { return core_->context(); }

rpc::Generation Connection::generation() const noexcept { return core_->generation(); }

ConnectionStats Connection::stats() const noexcept { return core_->stats(); }

EventLoop& Connection::loop() const noexcept { return core_->loop(); }

const ConnectionOptions& Connection::options() const noexcept { return core_->options(); }

}  // namespace tether
