// The HTTP endpoints of a Server (tether/service/http.hpp): one bounded request per
// connection, parsed by http-parser, answered from a metrics snapshot.

#include <http_parser.h>

#include <array>
#include <exception>
#include <string>

#include <fmt/format.h>

#include "tether/base/error.hpp"
#include "tether/base/log.hpp"
#include "tether/service/http.hpp"

namespace tether::http {

namespace {

/// What the parser callbacks collect.
struct Head {
  std::string url;
  bool headers_done = false;
};

int on_url(http_parser* p, const char* at, std::size_t n) {
  static_cast<Head*>(p->data)->url.append(at, n);
  return 0;
}

int on_headers_complete(http_parser* p) {
  static_cast<Head*>(p->data)->headers_done = true;
  http_parser_pause(p, 1);  // the head is all we read; a body is never looked at
  return 0;
}

const char* reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Status";
  }
}

HttpResponse text(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

}  // namespace

bool starts_request(std::string_view first) noexcept {
  static constexpr std::array<std::string_view, 9> kMethods = {"GET ", "HEAD", "POST", "PUT ", "DELE",
                                                              "OPTI", "PATC", "CONN", "TRAC"};
  for (std::string_view m : kMethods) {
    if (first.substr(0, 4) == m) return true;
  }
  return false;
}

std::string serialize(const HttpResponse& r, bool head_only) {
  std::string out = fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n"
      "X-Content-Type-Options: nosniff\r\nConnection: close\r\n{}\r\n",
      r.status, reason(r.status), r.content_type, r.body.size(), r.headers);
  if (!head_only) out += r.body;
  return out;
}

HttpResponse respond(std::string_view head, const ServerMetrics& metrics, const HttpOptions& options) {
  Head h;
  http_parser parser;
  http_parser_init(&parser, HTTP_REQUEST);
  parser.data = &h;
  http_parser_settings settings;
  http_parser_settings_init(&settings);
  settings.on_url = on_url;
  settings.on_headers_complete = on_headers_complete;
  http_parser_execute(&parser, &settings, head.data(), head.size());
  const auto err = static_cast<http_errno>(parser.http_errno);
  if ((err != HPE_OK && err != HPE_PAUSED) || !h.headers_done) return text(400, "bad request\n");
  if (parser.http_major != 1) return text(400, "HTTP/1.x only\n");
  if (parser.method != HTTP_GET && parser.method != HTTP_HEAD) {
    HttpResponse r = text(405, "GET and HEAD only\n");
    r.headers = "Allow: GET, HEAD\r\n";
    return r;
  }
  http_parser_url url;
  http_parser_url_init(&url);
  if (http_parser_parse_url(h.url.data(), h.url.size(), 0, &url) != 0 || !(url.field_set & (1 << UF_PATH))) {
    return text(400, "bad request target\n");
  }
  const std::string_view path(h.url.data() + url.field_data[UF_PATH].off, url.field_data[UF_PATH].len);
  if (path == "/metrics") {
    HttpResponse r = text(200, render_prometheus(metrics.snapshot()));
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    return r;
  }
  if (path == "/healthz") return text(200, "ok\n");
  if (path == "/readyz") {
    if (metrics.ready()) return text(200, "ready\n");
    return text(503, metrics.snapshot().draining ? "draining\n" : "not listening\n");
  }
  if (path == "/status.json") {
    HttpResponse r = text(200, render_status_json(metrics.snapshot()));
    r.content_type = "application/json";
    return r;
  }
  if (path == "/" && options.console) {
    HttpResponse r = text(200, std::string(console_page()));
    r.content_type = "text/html; charset=utf-8";
    r.headers = "Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; "
                "style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:\r\n";
    return r;
  }
  return text(404, "not found\n");
}

Task<void> serve(BufferedStream& stream, std::shared_ptr<ServerMetrics> metrics, HttpOptions options) {
  HttpResponse response;
  bool head_only = false;
  bool answer = true;
  try {
    Bytes head = co_await with_timeout(options.timeout, stream.read_until("\r\n\r\n", options.max_head_bytes));
    const std::string_view view = head.view();
    head_only = view.starts_with("HEAD ");
    response = respond(view, *metrics, options);
  } catch (const LimitOverrun&) {
    response = text(431, "request head too large\n");
  } catch (const Timeout&) {
    response = text(408, "request timeout\n");
  } catch (const LimitExceeded&) {
    response = text(431, "request head too large\n");
  } catch (const std::bad_alloc&) {
    response = text(500, "out of memory\n");
  } catch (...) {
    answer = false;  // the client went away (EOF before a whole head): nothing to answer
  }
  metrics->count_http_request();
  if (answer) {
    try {
      stream.write(serialize(response, head_only));
    } catch (...) {
      answer = false;
    }
  }
  stream.close();  // queued bytes are flushed first
  try {
    co_await with_timeout(options.timeout, stream.wait_closed());
  } catch (...) {
    stream.abort();
  }
}

}  // namespace tether::http
