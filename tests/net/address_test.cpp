// Address values, parsing, and resolve().
#include <netinet/in.h>
#include <sys/un.h>

#include "test_util.hpp"
#include "tether/net/address.hpp"

namespace tether {
namespace {

TEST(AddressTest, Ipv4RoundTrip) {
  auto a = Address::parse("10.1.2.3:8080");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->family(), Address::Family::kIPv4);
  EXPECT_EQ(a->port(), 8080);
  EXPECT_EQ(a->host(), "10.1.2.3");
  EXPECT_EQ(a->to_string(), "10.1.2.3:8080");
  EXPECT_EQ(a->os_family(), AF_INET);
  EXPECT_EQ(a->sockaddr_len(), sizeof(sockaddr_in));
  EXPECT_FALSE(a->is_loopback());
  EXPECT_TRUE(Address::parse("127.9.9.9:1")->is_loopback());
  EXPECT_EQ(a->with_port(9).to_string(), "10.1.2.3:9");
}

TEST(AddressTest, Ipv6RoundTrip) {
  auto a = Address::parse("[::1]:443");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->family(), Address::Family::kIPv6);
  EXPECT_EQ(a->port(), 443);
  EXPECT_EQ(a->host(), "::1");
  EXPECT_EQ(a->to_string(), "[::1]:443");
  EXPECT_TRUE(a->is_loopback());
  EXPECT_EQ(*a, Address::loopback_v6(443));
  auto full = Address::parse("[2001:db8:0:0:0:0:0:1]:80");
  ASSERT_TRUE(full);
  EXPECT_EQ(full->to_string(), "[2001:db8::1]:80");  // canonical text
  auto scoped = Address::from_ip("fe80::1%1", 5);
  ASSERT_TRUE(scoped);
  EXPECT_NE(scoped->host().find('%'), std::string::npos);
  EXPECT_NE(*scoped, *Address::from_ip("fe80::1", 5));
}

TEST(AddressTest, UnixAndAbstract) {
  auto p = Address::parse("unix:/run/x.sock");
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->is_unix());
  EXPECT_FALSE(p->is_abstract());
  EXPECT_EQ(p->host(), "/run/x.sock");
  EXPECT_EQ(p->to_string(), "unix:/run/x.sock");
  EXPECT_EQ(*Address::parse("/run/x.sock"), *p);

  Address at = Address::unix_socket("@tether");
  EXPECT_TRUE(at.is_abstract());
  EXPECT_EQ(at.host(), "@tether");
  EXPECT_EQ(at.to_string(), "unix:@tether");
  EXPECT_EQ(at.sockaddr_len(), offsetof(sockaddr_un, sun_path) + 7);  // NUL + "tether", no terminator
  Address nul = Address::unix_socket(std::string_view("\0tether", 7));
  EXPECT_EQ(nul, at);
  EXPECT_EQ(*Address::parse("unix:@tether"), at);

  EXPECT_THROW(Address::unix_socket(std::string(200, 'a')), UsageError);
  EXPECT_THROW(Address::unix_socket(""), UsageError);
}

TEST(AddressTest, MalformedTextIsRejected) {
  for (const char* bad : {"", "1.2.3.4", "1.2.3.4:", "1.2.3.4:65536", "1.2.3.4:-1", "1.2.3:80", "[::1]", "[::1]80",
                          "::1:80", "[1.2.3.4]:80", "localhost:80", "unix:", "[::1]:8o"}) {
    EXPECT_FALSE(Address::parse(bad)) << bad;
  }
  EXPECT_FALSE(Address::from_ip("example.com", 1));
  EXPECT_TRUE(Address().empty());
  EXPECT_EQ(Address().to_string(), "");
}

TEST(AddressTest, FromSockaddrCopiesKernelAddresses) {
  Address a = Address::loopback_v4(77);
  Address b = Address::from_sockaddr(a.sockaddr_ptr(), a.sockaddr_len());
  EXPECT_EQ(a, b);
  sockaddr unknown{};
  unknown.sa_family = AF_APPLETALK;
  EXPECT_TRUE(Address::from_sockaddr(&unknown, sizeof unknown).empty());
}

class ResolveTest : public testing::LoopTest {};

TEST_F(ResolveTest, NumericHostsResolveInline) {
  // No loop turn needed: the task completes the first time it runs.
  Task<std::vector<Address>> t = resolve("127.0.0.1", 80);
  auto h = t.handle();
  h.promise().set_continuation(std::noop_coroutine());
  h.resume();
  ASSERT_TRUE(t.done());
  auto v = t.take_result();
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0], Address::loopback_v4(80));
  EXPECT_THROW(run(resolve("127.0.0.1", 1, AddressFamily::kIPv6)), Error);
}

TEST_F(ResolveTest, LocalhostResolvesToLoopback) {
  std::vector<Address> v = run(resolve("localhost", 4242));
  ASSERT_FALSE(v.empty());
  for (const Address& a : v) {
    EXPECT_TRUE(a.is_loopback()) << a.to_string();
    EXPECT_EQ(a.port(), 4242);
  }
  std::vector<Address> v4 = run(resolve("localhost", 1, AddressFamily::kIPv4));
  ASSERT_FALSE(v4.empty());
  for (const Address& a : v4) EXPECT_EQ(a.family(), Address::Family::kIPv4);
}

TEST(ResolveBlockingTest, PassiveEmptyHostMeansEveryInterface) {
  std::vector<Address> v = resolve_blocking("", 0, AddressFamily::kIPv4, /*passive=*/true);
  ASSERT_FALSE(v.empty());
  EXPECT_EQ(v[0].host(), "0.0.0.0");
}

}  // namespace
}  // namespace tether
