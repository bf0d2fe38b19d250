#include "tether/net/connect.hpp"

#include <cerrno>

#include <fmt/format.h>

#include "tether/base/error.hpp"
#include "tether/net/tls_transport.hpp"
#include "tether/stream/fd_transport.hpp"

namespace tether {

namespace {

Task<std::unique_ptr<Transport>> wrap(Fd fd, Address addr, const ConnectOptions& opts, std::string host) {
  if (!opts.tls) {
    co_return std::make_unique<FdTransport>(EventLoop::current_or_throw(), std::move(fd), addr.to_string());
  }
  std::string name = opts.server_hostname.empty() ? std::move(host) : opts.server_hostname;
  std::unique_ptr<TlsTransport> tls =
      co_await TlsTransport::client(std::move(fd), *opts.tls, std::move(name), opts.tls_handshake_timeout);
  co_return std::unique_ptr<Transport>(std::move(tls));
}

}  // namespace

Task<std::unique_ptr<Transport>> connect_transport(Address addr, ConnectOptions opts) {
  Fd fd = co_await connect_socket(addr, opts.connect_timeout, opts.socket);
  std::string host = addr.is_unix() ? std::string() : addr.host();
  std::unique_ptr<Transport> t = co_await wrap(std::move(fd), addr, opts, std::move(host));
  co_return t;
}

Task<std::unique_ptr<Transport>> connect_transport(std::string host, std::uint16_t port, ConnectOptions opts) {
  std::vector<Address> addrs = co_await resolve(host, port, opts.family);
  std::string failures;
  ErrorKind last_kind = ErrorKind::kIo;
  int last_code = 0;
  std::string last_what;
  for (const Address& addr : addrs) {
    Fd fd;
    try {
      fd = co_await connect_socket(addr, opts.connect_timeout, opts.socket);
    } catch (const IoError& e) {
      last_kind = e.kind();
      last_code = e.code();
      last_what = e.what();
    } catch (const Error& e) {
      last_kind = e.kind();
      last_code = 0;
      last_what = e.what();
    }
    if (fd) {
      std::unique_ptr<Transport> t = co_await wrap(std::move(fd), addr, opts, host);
      co_return t;
    }
    if (!failures.empty()) failures += "; ";
    failures += last_what;
  }
  if (addrs.size() == 1) {
    if (last_kind == ErrorKind::kTimeout) throw Timeout(last_what);
    if (last_code) throw IoError(last_code, fmt::format("connect to {}", addrs[0].to_string()));
    throw Error(last_kind, last_what);
  }
  std::string what = fmt::format("connect to {}:{} failed on every address ({})", host, port, failures);
  if (last_kind == ErrorKind::kTimeout) throw Timeout(what);
  if (last_code) throw IoError(last_code, what);
  throw Error(last_kind, what);
}

Task<std::unique_ptr<BufferedStream>> open_connection(std::string host, std::uint16_t port, ConnectOptions opts) {
  StreamOptions so = opts.stream;
  std::unique_ptr<Transport> t = co_await connect_transport(std::move(host), port, std::move(opts));
  co_return std::make_unique<BufferedStream>(std::move(t), so);
}

Task<std::unique_ptr<BufferedStream>> open_unix_connection(std::string path, ConnectOptions opts) {
  Address addr = Address::unix_socket(path);
  StreamOptions so = opts.stream;
  std::unique_ptr<Transport> t = co_await connect_transport(addr, std::move(opts));
  co_return std::make_unique<BufferedStream>(std::move(t), so);
}

}  // namespace tether
