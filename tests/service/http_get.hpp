#pragma once
// A blocking HTTP/1.1 client for tests: one request, read until the server closes, bounded by a
// receive timeout. Raw bytes in, status and body out.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace tether::testing {

struct HttpReply {
  int status = 0;  ///< 0: no HTTP answer (connection closed without one, or timed out)
  std::string head;
  std::string body;
  std::string raw;
  bool closed_by_server = false;  ///< the server closed the connection (not our receive timeout)
};

/// Sends `request` as is to 127.0.0.1:port and reads the whole answer (5 s receive timeout).
inline HttpReply http_raw(std::uint16_t port, std::string_view request) {
  HttpReply r;
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return r;
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return r;
  }
  std::size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<std::size_t>(n);
  }
  char buf[16384];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n == 0) r.closed_by_server = true;
    if (n <= 0) break;
    r.raw.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  if (r.raw.starts_with("HTTP/1.1 ") && r.raw.size() >= 12) {
    r.status = std::stoi(r.raw.substr(9, 3));
    const auto end = r.raw.find("\r\n\r\n");
    if (end != std::string::npos) {
      r.head = r.raw.substr(0, end);
      r.body = r.raw.substr(end + 4);
    }
  }
  return r;
}

inline HttpReply http_get(std::uint16_t port, std::string_view path, std::string_view method = "GET") {
  std::string req(method);
  req += ' ';
  req += path;
  req += " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  return http_raw(port, req);
}

}  // namespace tether::testing
