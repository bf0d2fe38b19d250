#pragma once
// Private: HTTP requests on tether's loop through libcurl's multi interface.
//
// CurlMulti owns one CURLM and drives it from the loop: curl's socket callback maps each of its
// sockets onto an IoWatcher, its timer callback onto a loop timer, and readiness or expiry is
// handed back with curl_multi_socket_action. HttpTransfer is one request (one easy handle).
//
// Rules that keep this safe:
//  * curl calls back only from inside curl functions; those callbacks never resume coroutines
//    or free anything curl still uses: they append bytes, set Events (which only schedule the
//    waiters) and retire watchers (switched off at once, freed at the next action);
//  * a transfer is removed from the multi handle when it completes (outside any callback) or
//    when its owner destroys it (from a coroutine frame or the loop, never from a callback).
//
// Loop thread only. A CurlMulti must outlive its transfers.

#include <curl/curl.h>

#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tether/loop/event_loop.hpp"
#include "tether/loop/io_watcher.hpp"
#include "tether/loop/sync.hpp"
#include "tether/loop/task.hpp"

namespace tether::registry::detail {

class HttpTransfer;

class CurlMulti {
 public:
  explicit CurlMulti(EventLoop& loop);
  ~CurlMulti();
  CurlMulti(const CurlMulti&) = delete;
  CurlMulti& operator=(const CurlMulti&) = delete;

  [[nodiscard]] EventLoop& loop() const noexcept { return loop_; }
  /// Transfers in progress.
  [[nodiscard]] std::size_t active() const noexcept { return transfers_.size(); }

  // Used by HttpTransfer.
  void add(HttpTransfer* t);
  void remove(HttpTransfer* t) noexcept;

 private:
  static int on_socket(CURL* easy, curl_socket_t s, int what, void* userp, void* socketp);
  static int on_timer(CURLM* multi, long timeout_ms, void* userp);
  void action(curl_socket_t s, int flags);
  void collect_done();

  EventLoop& loop_;
  CURLM* multi_ = nullptr;
  std::map<curl_socket_t, std::unique_ptr<IoWatcher>> watchers_;
  std::vector<std::unique_ptr<IoWatcher>> retired_;  // switched off; freed at the next action
  TimerHandle timer_;
  bool timer_armed_ = false;
  bool closing_ = false;  // inside curl_multi_cleanup
  std::vector<HttpTransfer*> transfers_;
};

/// What an HTTP request returned.
struct HttpResponse {
  long status = 0;
  std::string body;
};

/// Per-request settings.
struct HttpRequest {
  std::string url;
  std::string body;  ///< POSTed as application/json
  std::vector<std::string> headers;
  Duration connect_timeout = std::chrono::seconds(2);
  Duration timeout{};               ///< whole request (zero: none, for streams)
  std::size_t max_body = 4u << 20;  ///< unread response bytes allowed (larger: the transfer fails)
};

/// One POST. Owned by the coroutine that uses it; destroying it aborts the request.
class HttpTransfer {
 public:
  HttpTransfer(CurlMulti& multi, HttpRequest request);
  ~HttpTransfer();
  HttpTransfer(const HttpTransfer&) = delete;
  HttpTransfer& operator=(const HttpTransfer&) = delete;

  /// Starts the request (once).
  void start();
  /// Waits for the end of the transfer: the status and (unread) body. Throws Timeout when
  /// curl's timeout expired, Error (kind kIo) naming the URL and curl's reason otherwise.
  Task<HttpResponse> finish();
  /// Streaming: the next complete line of the body (without its newline); nullopt once the
  /// transfer ended and no complete line is left (finish() then tells how it ended).
  Task<std::optional<std::string>> next_line();
  /// The transfer ended (successfully or not).
  [[nodiscard]] bool done() const noexcept { return done_; }
  [[nodiscard]] const std::string& url() const noexcept { return request_.url; }

  // Used by CurlMulti.
  void complete(CURLcode result) noexcept;
  void detach() noexcept { multi_ = nullptr; }
  [[nodiscard]] CURL* easy() const noexcept { return easy_; }

 private:
  static std::size_t on_data(char* data, std::size_t size, std::size_t n, void* userp);
  void check_result();

  CurlMulti* multi_;
  HttpRequest request_;
  CURL* easy_ = nullptr;
  curl_slist* headers_ = nullptr;
  char error_[CURL_ERROR_SIZE] = {};
  std::string body_;
  std::size_t line_scan_ = 0;  // bytes of body_ already searched for a newline
  bool started_ = false;
  bool done_ = false;
  bool overflow_ = false;
  CURLcode result_ = CURLE_OK;
  long status_ = 0;
  Event changed_;
};

}  // namespace tether::registry::detail
