#include "registry/curl_multi.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <mutex>

#include "tether/base/error.hpp"

namespace tether::registry::detail {

namespace {

void global_init() {
  static std::once_flag once;
  std::call_once(once, []() { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

long millis(Duration d) {
  return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
}

}  // namespace

// --------------------------------------------------------------------------------- CurlMulti

CurlMulti::CurlMulti(EventLoop& loop) : loop_(loop) {
  loop_.assert_in_loop_thread();
  global_init();
  multi_ = curl_multi_init();
  if (!multi_) throw Error(ErrorKind::kIo, "curl_multi_init failed");
  curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &CurlMulti::on_socket);
  curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
  curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &CurlMulti::on_timer);
  curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
}

CurlMulti::~CurlMulti() {
  // Transfers should be gone; any left are cut loose (their owners see them end).
  for (HttpTransfer* t : std::vector<HttpTransfer*>(transfers_)) {
    curl_multi_remove_handle(multi_, t->easy());
    t->detach();
    t->complete(CURLE_ABORTED_BY_CALLBACK);
  }
  transfers_.clear();
  // Off the loop while curl's sockets are still open; the objects live on until curl, which
  // may still report them removed while it cleans up, is done.
  for (auto& [fd, w] : watchers_) w->disable_all();
  closing_ = true;
  curl_multi_cleanup(multi_);
  multi_ = nullptr;
  if (timer_armed_) timer_.cancel();
  watchers_.clear();
  retired_.clear();
}

void CurlMulti::add(HttpTransfer* t) {
  transfers_.push_back(t);
  CURLMcode rc = curl_multi_add_handle(multi_, t->easy());
  if (rc != CURLM_OK) {
    transfers_.pop_back();
    throw Error(ErrorKind::kIo, fmt::format("curl_multi_add_handle: {}", curl_multi_strerror(rc)));
  }
}

void CurlMulti::remove(HttpTransfer* t) noexcept {
  auto it = std::find(transfers_.begin(), transfers_.end(), t);
  if (it == transfers_.end()) return;
  transfers_.erase(it);
  curl_multi_remove_handle(multi_, t->easy());
}

int CurlMulti::on_socket(CURL*, curl_socket_t s, int what, void* userp, void* socketp) {
  auto* self = static_cast<CurlMulti*>(userp);
  auto* w = static_cast<IoWatcher*>(socketp);
  if (what == CURL_POLL_REMOVE) {
    auto it = self->watchers_.find(s);
    if (it != self->watchers_.end()) {
      // This may be the watcher whose dispatch is running right now: switch it off, free later.
      it->second->disable_all();
      self->retired_.push_back(std::move(it->second));
      self->watchers_.erase(it);
    }
    if (!self->closing_) curl_multi_assign(self->multi_, s, nullptr);
    return 0;
  }
  if (self->closing_) return 0;
  if (!w) {
    auto known = self->watchers_.find(s);
    if (known != self->watchers_.end()) w = known->second.get();
  }
  if (!w) {
    auto watcher = std::make_unique<IoWatcher>(self->loop_, s);
    watcher->set_handler([self, s](std::uint32_t ev) {
      int flags = 0;
      if (ev & kIoReadable) flags |= CURL_CSELECT_IN;
      if (ev & kIoWritable) flags |= CURL_CSELECT_OUT;
      if (ev & kIoError) flags |= CURL_CSELECT_ERR;
      self->action(s, flags);
    });
    w = watcher.get();
    self->watchers_[s] = std::move(watcher);
    curl_multi_assign(self->multi_, s, w);
  }
  if (what & CURL_POLL_IN) {
    w->enable_reading();
  } else {
    w->disable_reading();
  }
  if (what & CURL_POLL_OUT) {
    w->enable_writing();
  } else {
    w->disable_writing();
  }
  return 0;
}

int CurlMulti::on_timer(CURLM*, long timeout_ms, void* userp) {
  auto* self = static_cast<CurlMulti*>(userp);
  if (self->timer_armed_) {
    self->timer_.cancel();
    self->timer_armed_ = false;
  }
  if (timeout_ms < 0) return 0;
  // Never act from inside curl: even "now" (0) goes through the loop.
  self->timer_armed_ = true;
  self->timer_ = self->loop_.call_later(std::chrono::milliseconds(timeout_ms), [self]() {
    self->timer_armed_ = false;
    self->action(CURL_SOCKET_TIMEOUT, 0);
  });
  return 0;
}

void CurlMulti::action(curl_socket_t s, int flags) {
  retired_.clear();  // no dispatch of theirs can be running: they were switched off earlier
  int running = 0;
  curl_multi_socket_action(multi_, s, flags, &running);
  collect_done();
}

void CurlMulti::collect_done() {
  int left = 0;
  while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
    if (msg->msg != CURLMSG_DONE) continue;
    HttpTransfer* t = nullptr;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, reinterpret_cast<char**>(&t));
    const CURLcode result = msg->data.result;
    if (!t) continue;
    remove(t);  // msg is not used after this
    t->complete(result);
  }
}

// ------------------------------------------------------------------------------ HttpTransfer

HttpTransfer::HttpTransfer(CurlMulti& multi, HttpRequest request)
    : multi_(&multi), request_(std::move(request)) {
  easy_ = curl_easy_init();
  if (!easy_) throw Error(ErrorKind::kIo, "curl_easy_init failed");
  headers_ = curl_slist_append(headers_, "Content-Type: application/json");
  headers_ = curl_slist_append(headers_, "Expect:");  // no 100-continue round trip
  for (const std::string& h : request_.headers) headers_ = curl_slist_append(headers_, h.c_str());
  curl_easy_setopt(easy_, CURLOPT_URL, request_.url.c_str());
  curl_easy_setopt(easy_, CURLOPT_POST, 1L);
  curl_easy_setopt(easy_, CURLOPT_POSTFIELDSIZE, static_cast<long>(request_.body.size()));
  curl_easy_setopt(easy_, CURLOPT_POSTFIELDS, request_.body.data());  // request_ outlives easy_
  curl_easy_setopt(easy_, CURLOPT_HTTPHEADER, headers_);
  curl_easy_setopt(easy_, CURLOPT_WRITEFUNCTION, &HttpTransfer::on_data);
  curl_easy_setopt(easy_, CURLOPT_WRITEDATA, this);
  curl_easy_setopt(easy_, CURLOPT_PRIVATE, this);
  curl_easy_setopt(easy_, CURLOPT_ERRORBUFFER, error_);
  curl_easy_setopt(easy_, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy_, CURLOPT_NOPROXY, "*");  // etcd is reached directly, whatever http_proxy says
  curl_easy_setopt(easy_, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
  curl_easy_setopt(easy_, CURLOPT_CONNECTTIMEOUT_MS, std::max(1L, millis(request_.connect_timeout)));
  if (request_.timeout > Duration::zero()) {
    curl_easy_setopt(easy_, CURLOPT_TIMEOUT_MS, std::max(1L, millis(request_.timeout)));
  }
  // A peer that vanishes without a reset (a partition) still ends long-lived streams.
  curl_easy_setopt(easy_, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(easy_, CURLOPT_TCP_KEEPIDLE, 5L);
  curl_easy_setopt(easy_, CURLOPT_TCP_KEEPINTVL, 2L);
}

HttpTransfer::~HttpTransfer() {
  if (multi_ && started_ && !done_) multi_->remove(this);
  curl_easy_cleanup(easy_);
  curl_slist_free_all(headers_);
}

void HttpTransfer::start() {
  if (started_) return;
  if (!multi_) throw Error(ErrorKind::kIo, "HTTP transfer: the client is gone");
  started_ = true;
  multi_->add(this);
}

std::size_t HttpTransfer::on_data(char* data, std::size_t size, std::size_t n, void* userp) {
  auto* self = static_cast<HttpTransfer*>(userp);
  const std::size_t bytes = size * n;
  if (self->body_.size() + bytes > self->request_.max_body) {
    self->overflow_ = true;
    return 0;  // ends the transfer with CURLE_WRITE_ERROR
  }
  self->body_.append(data, bytes);
  self->changed_.set();
  return bytes;
}

void HttpTransfer::complete(CURLcode result) noexcept {
  if (done_) return;
  done_ = true;
  result_ = result;
  if (easy_) curl_easy_getinfo(easy_, CURLINFO_RESPONSE_CODE, &status_);
  changed_.set();
}

void HttpTransfer::check_result() {
  if (result_ == CURLE_OK) return;
  const std::string reason = overflow_   ? fmt::format("response larger than {} bytes", request_.max_body)
                             : error_[0] ? std::string(error_)
                                         : std::string(curl_easy_strerror(result_));
  if (result_ == CURLE_OPERATION_TIMEDOUT) throw Timeout(fmt::format("{}: {}", request_.url, reason));
  throw Error(ErrorKind::kIo, fmt::format("{}: {}", request_.url, reason));
}

Task<HttpResponse> HttpTransfer::finish() {
  start();
  while (!done_) {
    changed_.clear();
    co_await changed_.wait();
  }
  check_result();
  HttpResponse r;
  r.status = status_;
  r.body = std::move(body_);
  body_.clear();
  co_return r;
}

Task<std::optional<std::string>> HttpTransfer::next_line() {
  start();
  for (;;) {
    const std::size_t nl = body_.find('\n', line_scan_);
    if (nl != std::string::npos) {
      std::string line = body_.substr(0, nl);
      body_.erase(0, nl + 1);
      line_scan_ = 0;
      co_return line;
    }
    line_scan_ = body_.size();
    if (done_) co_return std::nullopt;
    changed_.clear();
    co_await changed_.wait();
  }
}

}  // namespace tether::registry::detail
