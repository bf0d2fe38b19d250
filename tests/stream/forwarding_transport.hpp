#pragma once
// A transport that forwards to another one: the base of the tests' probing wrappers, which
// override what they count or script. It forwards read(), write() and the lifecycle only:
// try_read()/try_write() keep Transport's defaults (not supported) unless a wrapper forwards
// them too.

#include <sys/uio.h>

#include <cstddef>
#include <memory>
#include <span>
#include <utility>

#include "tether/base/buffer.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/loop/task.hpp"
#include "tether/stream/transport.hpp"

namespace tether::testing {

class ForwardingTransport : public Transport {
 public:
  explicit ForwardingTransport(std::unique_ptr<Transport> inner) : inner_(std::move(inner)) {}

  Task<std::size_t> read(Buffer& buf, std::size_t max_bytes) override { return inner_->read(buf, max_bytes); }
  Task<std::size_t> write(std::span<const iovec> chunks) override { return inner_->write(chunks); }
  void shutdown_write() override { inner_->shutdown_write(); }
  void close() noexcept override { inner_->close(); }
  [[nodiscard]] bool closed() const noexcept override { return inner_->closed(); }
  [[nodiscard]] EventLoop& loop() const noexcept override { return inner_->loop(); }

 protected:
  [[nodiscard]] Transport& inner() const noexcept { return *inner_; }

 private:
  std::unique_ptr<Transport> inner_;
};

}  // namespace tether::testing
