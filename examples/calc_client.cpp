// calc_client: calls calc_server with the blocking client facade.
//
//   calc_client [--host 127.0.0.1] --port N
//
// Shows a typed call, a value round trip, a C++ callback the server calls back, a remote
// exception, and a remote C++ object used through a SyncNetref.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>

#include "tether/rpc/remote_exception.hpp"
#include "tether/service/sync.hpp"

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  int port = 18861;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
      host = argv[++i];
    } else if (std::strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
      port = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: calc_client [--host H] --port N\n");
      return 2;
    }
  }
  try {
    tether::SyncConnection conn = tether::connect_sync(host, static_cast<std::uint16_t>(port));
    std::printf("service: %s (RPyC %d.x)\n", conn.callattr<std::string>("get_service_name").c_str(),
                static_cast<int>(conn.connection().generation()));

    std::printf("add(1, 2) = %lld\n", static_cast<long long>(conn.callattr<std::int64_t>("add", 1, 2)));
    std::printf("echo('héllo') = %s\n", conn.callattr<std::string>("echo", "héllo").c_str());

    // The server calls this lambda back while our call waits (the loop keeps serving).
    std::function<std::int64_t(std::int64_t)> times_ten = [](std::int64_t x) {
      std::printf("  callback called with %lld\n", static_cast<long long>(x));
      return x * 10;
    };
    std::printf("apply(times_ten, 4) = %lld\n",
                static_cast<long long>(conn.callattr<std::int64_t>("apply", times_ten, 4)));

    try {
      conn.callattr<std::int64_t>("fail", "something went wrong");
    } catch (const tether::RemoteError& e) {
      std::printf("fail(...) raised %s: %s\n", e.type_name().c_str(), e.args().empty() ? "" : e.args()[0].c_str());
    }

    tether::SyncNetref store = conn.root().attr("store");
    store.callattr("put", "apple", "red");
    store.callattr("put", "banana", "yellow");
    std::printf("store: %s, len = %lld, store['apple'] = %s\n", store.repr().c_str(),
                static_cast<long long>(store.len()), store.getitem<std::string>("apple").c_str());
    std::printf("keys:");
    for (const std::string& key : store.iterate<std::string>()) std::printf(" %s", key.c_str());
    std::printf("\n");
    conn.close();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "calc_client: %s\n", e.what());
    return 1;
  }
  return 0;
}
