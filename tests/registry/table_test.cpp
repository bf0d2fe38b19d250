// RegistryTable: RPyC's rules (upper-cased names, refresh, unregister from every name, QUERY
// order and lazy pruning, LIST without pruning) and the bounds, on a clock the test moves.

#include "tether/registry/table.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

namespace tether::registry {
namespace {

using std::chrono::seconds;

class TableTest : public ::testing::Test {
 protected:
  TimePoint t0_ = TimePoint() + std::chrono::hours(1000);
};

TEST_F(TableTest, RegisterQueryUnregisterAsRpyc) {
  RegistryTable t;
  EXPECT_EQ(t.register_endpoint("10.0.0.1", {"foo"}, 12345, t0_).added, 1u);
  EXPECT_EQ(t.register_endpoint("10.0.0.1", {"FOO"}, 45678, t0_ + seconds(1)).added, 1u);
  EXPECT_EQ(t.query("Foo", t0_ + seconds(2)),
            (std::vector<HostPort>{{"10.0.0.1", 12345}, {"10.0.0.1", 45678}}));
  EXPECT_EQ(t.unregister_endpoint("10.0.0.1", 12345), 1u);
  EXPECT_EQ(t.query("FOO", t0_ + seconds(2)), (std::vector<HostPort>{{"10.0.0.1", 45678}}));
  EXPECT_EQ(t.list(std::nullopt), (std::vector<std::string>{"FOO"}));
  t.register_endpoint("10.0.0.1", {"BAR"}, 54321, t0_ + seconds(3));
  EXPECT_EQ(t.list(std::nullopt), (std::vector<std::string>{"BAR", "FOO"}));
  EXPECT_TRUE(t.query("NOPE", t0_).empty());
}

TEST_F(TableTest, ReRegistrationRefreshesAndReordersOldestFirst) {
  RegistryTable t;
  t.register_endpoint("10.0.0.1", {"S"}, 1, t0_);
  t.register_endpoint("10.0.0.2", {"S"}, 2, t0_ + seconds(1));
  RegisterResult r = t.register_endpoint("10.0.0.1", {"S"}, 1, t0_ + seconds(2));
  EXPECT_EQ(r.added, 0u);
  EXPECT_EQ(r.refreshed, 1u);
  EXPECT_EQ(t.query("S", t0_ + seconds(3)), (std::vector<HostPort>{{"10.0.0.2", 2}, {"10.0.0.1", 1}}));
  // Same instant: registration order.
  t.register_endpoint("10.0.0.3", {"T"}, 3, t0_);
  t.register_endpoint("10.0.0.4", {"T"}, 4, t0_);
  EXPECT_EQ(t.query("T", t0_), (std::vector<HostPort>{{"10.0.0.3", 3}, {"10.0.0.4", 4}}));
}

TEST_F(TableTest, UnregisterRemovesTheEndpointUnderEveryNameOfThatHostOnly) {
  RegistryTable t;
  t.register_endpoint("10.0.0.1", {"A", "B"}, 9, t0_);
  t.register_endpoint("10.0.0.2", {"A"}, 9, t0_);
  EXPECT_EQ(t.unregister_endpoint("10.0.0.1", 9), 2u);
  EXPECT_EQ(t.list(std::nullopt), (std::vector<std::string>{"A"}));
  EXPECT_EQ(t.query("A", t0_), (std::vector<HostPort>{{"10.0.0.2", 9}}));
  EXPECT_EQ(t.unregister_endpoint("10.0.0.3", 9), 0u);
}

TEST_F(TableTest, QueryPrunesLazilyListDoesNot) {
  RegistryTable t(RegistryLimits(), seconds(5));
  std::vector<std::pair<std::string, HostPort>> removed;
  t.set_on_removed([&](const std::string& n, const HostPort& hp) { removed.emplace_back(n, hp); });
  t.register_endpoint("10.0.0.1", {"BAR"}, 17171, t0_);
  t.register_endpoint("10.0.0.2", {"BAR"}, 17172, t0_ + seconds(3));
  EXPECT_EQ(t.query("BAR", t0_ + seconds(5)).size(), 2u);  // exactly the timeout: still there
  EXPECT_EQ(t.list(std::nullopt), (std::vector<std::string>{"BAR"}));
  EXPECT_EQ(t.query("BAR", t0_ + seconds(6)), (std::vector<HostPort>{{"10.0.0.2", 17172}}));
  ASSERT_EQ(removed.size(), 1u);
  EXPECT_EQ(removed[0].first, "BAR");
  EXPECT_EQ(removed[0].second, (HostPort{"10.0.0.1", 17171}));
  EXPECT_TRUE(t.query("BAR", t0_ + seconds(9)).empty());
  EXPECT_EQ(t.services(), 0u);
  EXPECT_EQ(t.entries(), 0u);
}

TEST_F(TableTest, ListFiltersByHost) {
  RegistryTable t;
  t.register_endpoint("127.0.0.1", {"FOO"}, 12345, t0_);
  t.register_endpoint("127.0.0.2", {"BAR"}, 54321, t0_);
  EXPECT_EQ(t.list(std::string("127.0.0.1")), (std::vector<std::string>{"FOO"}));
  EXPECT_EQ(t.list(std::string("127.0.0.9")), (std::vector<std::string>{}));
}

TEST_F(TableTest, ListenersSeeNewEntriesNotRefreshes) {
  RegistryTable t;
  int added = 0;
  t.set_on_added([&](const std::string& n, const HostPort&) {
    EXPECT_EQ(n, "CALC");
    ++added;
  });
  t.register_endpoint("10.0.0.1", {"calc"}, 1, t0_);
  t.register_endpoint("10.0.0.1", {"calc"}, 1, t0_ + seconds(1));
  EXPECT_EQ(added, 1);
}

TEST_F(TableTest, BoundsRefuseAFloodOfNamesAndEndpoints) {
  RegistryLimits limits;
  limits.max_services = 10;
  limits.max_endpoints_per_service = 3;
  limits.max_entries = 20;
  limits.max_entries_per_host = 15;
  RegistryTable t(limits, seconds(60));
  std::size_t refused = 0;
  for (int i = 0; i < 1000; ++i) {
    refused += t.register_endpoint("10.0.0.1", {"NAME" + std::to_string(i)}, 1, t0_).refused;
  }
  EXPECT_EQ(t.services(), 10u);
  EXPECT_EQ(refused, 990u);
  // Endpoints under one name, from many hosts.
  for (int i = 0; i < 10; ++i) t.register_endpoint("10.0.1." + std::to_string(i), {"NAME0"}, 2, t0_);
  EXPECT_EQ(t.query("NAME0", t0_).size(), 3u);
  // Per host: 10.0.0.1 holds 10 entries already; five more fit, then it is refused.
  std::size_t more = 0;
  for (int i = 0; i < 10; ++i)
    more += t.register_endpoint("10.0.0.1", {"NAME" + std::to_string(i)}, 3, t0_).added;
  EXPECT_EQ(t.entries(), 17u);  // 10 + 2 (NAME0 from 10.0.1.x) + 5
  EXPECT_EQ(more, 5u);
  // A refresh is never refused.
  EXPECT_EQ(t.register_endpoint("10.0.0.1", {"NAME1"}, 1, t0_).refreshed, 1u);
}

TEST_F(TableTest, StaleEntriesMakeRoomBeforeARefusal) {
  RegistryLimits limits;
  limits.max_services = 2;
  RegistryTable t(limits, seconds(10));
  t.register_endpoint("10.0.0.1", {"A"}, 1, t0_);
  t.register_endpoint("10.0.0.1", {"B"}, 1, t0_ + seconds(8));
  EXPECT_EQ(t.register_endpoint("10.0.0.1", {"C"}, 1, t0_ + seconds(9)).refused, 1u);
  RegisterResult r = t.register_endpoint("10.0.0.1", {"C"}, 1, t0_ + seconds(11));
  EXPECT_EQ(r.added, 1u);  // A was stale and went
  EXPECT_EQ(t.list(std::nullopt), (std::vector<std::string>{"B", "C"}));
  EXPECT_EQ(t.prune(t0_ + seconds(30)), 2u);
  EXPECT_EQ(t.entries(), 0u);
}

}  // namespace
}  // namespace tether::registry
