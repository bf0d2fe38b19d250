#pragma once
// A hand-driven RPyC 5.x client over a blocking TCP socket: it sends exactly the messages a
// test chooses and can leave at any point of a conversation — with EOF, with a reset, after
// half a frame — as a careless or hostile peer does. Every read is bounded (SO_RCVTIMEO).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include "tether/base/endian.hpp"
#include "tether/base/fd.hpp"
#include "tether/brine/codec.hpp"
#include "tether/brine/value.hpp"
#include "tether/rpc/protocol.hpp"

namespace tether::testing {

/// One decoded 5.x message.
struct RawMessage {
  std::int64_t type = 0;  // 1 request, 2 reply, 3 exception
  std::int64_t seq = 0;
  brine::Value body;
  /// For a request: the handler number and the boxed arguments.
  [[nodiscard]] std::int64_t handler() const { return body.as_tuple()[0].as_int64(); }
  [[nodiscard]] const brine::Value& args() const { return body.as_tuple()[1]; }
};

class RawPeer {
 public:
  explicit RawPeer(std::uint16_t port, std::chrono::milliseconds timeout = std::chrono::seconds(15)) {
    fd_.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd_.valid()) throw std::runtime_error("socket");
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    ::setsockopt(fd_.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      throw std::runtime_error(std::string("connect: ") + std::strerror(errno));
    }
  }

  // --- boxing, from the peer's side (wire spec §5)
  static brine::Value value(brine::Value v) { return brine::Value::make_tuple(brine::Value(1), std::move(v)); }
  template <class... V>
  static brine::Value boxed_tuple(V&&... items) {
    return brine::Value::make_tuple(brine::Value(2), brine::Value::make_tuple(std::forward<V>(items)...));
  }
  /// One of the receiver's own objects (LOCAL_REF, id_pack).
  static brine::Value theirs(brine::Value id_pack) {
    return brine::Value::make_tuple(brine::Value(3), std::move(id_pack));
  }
  /// One of ours, lent to the receiver (REMOTE_REF, id_pack).
  static brine::Value ours(brine::Value id_pack) {
    return brine::Value::make_tuple(brine::Value(4), std::move(id_pack));
  }
  /// A callable of ours: "builtins.function" is called without an INSPECT first.
  static brine::Value function_id(std::int64_t id) {
    return brine::Value::make_tuple(brine::Value("builtins.function"), brine::Value(4242), brine::Value(id));
  }

  /// The frame of one 5.x message (msg, seq, body).
  static std::string frame(std::int64_t type, std::int64_t seq, const brine::Value& body) {
    std::string payload;
    brine::dump_into(brine::Value::make_tuple(brine::Value(type), brine::Value(seq), body), payload);
    std::string f(5, '\0');
    store_be32(reinterpret_cast<std::uint8_t*>(f.data()), static_cast<std::uint32_t>(payload.size()));
    f += payload;
    f += '\n';
    return f;
  }
  static std::string request_frame(std::int64_t seq, rpc::Handler h, brine::Value boxed_args) {
    return frame(1, seq,
                 brine::Value::make_tuple(brine::Value(static_cast<std::int64_t>(h)), std::move(boxed_args)));
  }

  void send_bytes(const std::string& bytes) {
    std::size_t off = 0;
    while (off < bytes.size()) {
      const ssize_t n = ::send(fd_.get(), bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) throw std::runtime_error("send failed");
      off += static_cast<std::size_t>(n);
    }
  }
  /// Sends a request; returns its seq.
  std::int64_t request(rpc::Handler h, brine::Value boxed_args) {
    const std::int64_t seq = next_seq_++;
    send_bytes(request_frame(seq, h, std::move(boxed_args)));
    return seq;
  }
  void reply(std::int64_t seq, brine::Value boxed) { send_bytes(frame(2, seq, boxed)); }

  /// Reads one message (nullopt at EOF or timeout).
  std::optional<RawMessage> recv() {
    std::uint8_t header[5];
    if (!read_exact(header, sizeof header)) return std::nullopt;
    const std::uint32_t len = load_be32(header);
    std::string body(len + 1, '\0');
    if (!read_exact(reinterpret_cast<std::uint8_t*>(body.data()), body.size())) return std::nullopt;
    body.resize(len);
    if (header[4] != 0) body = inflate(body);
    brine::Value env =
        brine::load(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(body.data()), body.size()));
    RawMessage m;
    m.type = env.as_tuple()[0].as_int64();
    m.seq = env.as_tuple()[1].as_int64();
    m.body = env.as_tuple()[2];
    return m;
  }
  /// Reads the next message, which must be of type `type` (DEL requests before it are skipped
  /// unless a request is expected).
  RawMessage expect(std::int64_t type) {
    std::optional<RawMessage> m = recv();
    // DEL requests (the server releasing a callable of ours) need no answer here: skipped.
    while (m && type != 1 && m->type == 1 && m->handler() == static_cast<std::int64_t>(rpc::Handler::kDel)) {
      m = recv();
    }
    if (!m) throw std::runtime_error("peer: EOF or timeout while waiting for a message");
    if (m->type != type) {
      throw std::runtime_error("peer: got message type " + std::to_string(m->type) + ", wanted " +
                               std::to_string(type));
    }
    return *std::move(m);
  }

  /// GETROOT; returns the root's id_pack.
  brine::Value get_root() {
    const std::int64_t seq = request(rpc::Handler::kGetRoot, value(brine::Value::make_tuple()));
    RawMessage r = expect(2);
    if (r.seq != seq) throw std::runtime_error("GETROOT: reply to another seq");
    root_ = r.body.as_tuple()[1];
    return root_;
  }
  /// The root's id_pack (after get_root()).
  [[nodiscard]] const brine::Value& root() const noexcept { return root_; }
  /// CALLATTR(root, name, args...) with positional boxed args; returns the seq.
  template <class... B>
  std::int64_t callattr(const std::string& name, B&&... boxed_args) {
    return request(rpc::Handler::kCallAttr,
                   boxed_tuple(theirs(root_), value(brine::Value(name)), boxed_tuple(std::forward<B>(boxed_args)...),
                               value(brine::Value::make_tuple())));
  }

  /// EOF: an orderly close.
  void close_eof() { fd_.reset(); }
  /// A reset: SO_LINGER 0, then close (the server reads ECONNRESET).
  void close_rst() {
    linger l{1, 0};
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
    fd_.reset();
  }
  /// The first `n` bytes of `frame`, then EOF.
  void close_mid_frame(const std::string& frame, std::size_t n) {
    send_bytes(frame.substr(0, n));
    close_eof();
  }
  /// Sends nothing more and reads nothing more, but keeps the socket open.
  [[nodiscard]] int fd() const noexcept { return fd_.get(); }

  /// zlib-inflates a compressed frame's body (RPyC compresses payloads over 3000 bytes).
  static std::string inflate(const std::string& in) {
    z_stream z{};
    if (inflateInit(&z) != Z_OK) throw std::runtime_error("inflateInit");
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z.avail_in = static_cast<uInt>(in.size());
    std::string out;
    char chunk[65536];
    int rc = Z_OK;
    while (rc != Z_STREAM_END) {
      z.next_out = reinterpret_cast<Bytef*>(chunk);
      z.avail_out = sizeof chunk;
      rc = ::inflate(&z, Z_NO_FLUSH);
      if (rc != Z_OK && rc != Z_STREAM_END) {
        inflateEnd(&z);
        throw std::runtime_error("inflate failed");
      }
      out.append(chunk, sizeof chunk - z.avail_out);
    }
    inflateEnd(&z);
    return out;
  }

 private:
  bool read_exact(std::uint8_t* p, std::size_t n) {
    std::size_t got = 0;
    while (got < n) {
      const ssize_t r = ::recv(fd_.get(), p + got, n - got, 0);
      if (r <= 0) return false;
      got += static_cast<std::size_t>(r);
    }
    return true;
  }

  Fd fd_;
  std::int64_t next_seq_ = 100;
  brine::Value root_;
};

}  // namespace tether::testing
