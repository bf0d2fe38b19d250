// StreamServer when the process runs out of file descriptors (EMFILE on accept).
//
// A program of its own because it lowers RLIMIT_NOFILE to the descriptors already open.
// Sanitizers and a full descriptor table: GCC's standalone UBSan runtime initialises at its first
// report and then cannot read its options, and its vptr check probes memory with pipe(), so a
// virtual call on a type first seen while no descriptor is free is reported as an "invalid
// vptr". That is why UniqueFunction erases types without a virtual base (base/function.hpp).
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <vector>

#include "net_test_util.hpp"
#include "test_util.hpp"
#include "tether/net/sockets.hpp"
#include "tether/net/stream_server.hpp"
#include "tether/stream/fd_transport.hpp"

namespace tether {
namespace {

using namespace std::chrono_literals;
using testing::echo_lines;
using testing::echo_once;
using testing::read_to_end;

class FdExhaustionTest : public testing::LoopTest {};

Task<void> read_eofs(std::vector<std::unique_ptr<BufferedStream>>* clients, int* eofs) {
  for (auto& c : *clients) {
    std::string rest = co_await read_to_end(c.get());
    if (rest.empty()) ++*eofs;
  }
}

TEST_F(FdExhaustionTest, PendingConnectionsAreShedWithoutSpinning) {
  StreamServer server(echo_lines);
  server.listen(0, "127.0.0.1");
  std::uint16_t port = server.ports()[0];
  // Clients connected at the kernel level (the backlog), wrapped before descriptors run out.
  std::vector<std::unique_ptr<BufferedStream>> clients;
  for (int i = 0; i < 3; ++i) {
    Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    Address a = Address::loopback_v4(port);
    ASSERT_EQ(::connect(fd.get(), a.sockaddr_ptr(), a.sockaddr_len()), 0);
    clients.push_back(std::make_unique<BufferedStream>(std::make_unique<FdTransport>(loop_, std::move(fd), "c")));
  }
  // Use up every descriptor below the soft limit.
  rlimit saved{};
  ::getrlimit(RLIMIT_NOFILE, &saved);
  int top = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(top, 0);
  rlimit low = saved;
  low.rlim_cur = static_cast<rlim_t>(top) + 1;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  std::vector<Fd> fillers;
  fillers.emplace_back(top);
  while (true) {
    int f = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (f < 0) break;
    fillers.emplace_back(f);
  }
  int eofs = 0;
  bool ok = true;
  try {
    run(read_eofs(&clients, &eofs), 10s);
  } catch (...) {
    ok = false;
  }
  fillers.clear();
  ::setrlimit(RLIMIT_NOFILE, &saved);
  ASSERT_TRUE(ok);
  EXPECT_EQ(eofs, 3);
  ServerStats st = server.stats();
  EXPECT_EQ(st.shed, 3u);
  EXPECT_GE(st.fd_exhausted, 3u);
  EXPECT_LE(st.fd_exhausted, 6u) << "accept must not spin on EMFILE";
  EXPECT_EQ(st.accepted, 0u);
  clients.clear();
  // Descriptors are back: the server serves again.
  EXPECT_EQ(run(echo_once("127.0.0.1", port, "again")), "again");
}

}  // namespace
}  // namespace tether
