// Faults on the wire (issue 24 item 2): sync, pipelined and callback calls (workload.hpp) under
//
//  * random packet loss of 1 %, 5 % and 20 % in both directions (nftables on a veth pair
//    between two network namespaces; root only, skipped with the reason otherwise),
//  * 50 ms delay with reordering (tc netem on the same pair; skipped where the kernel has no
//    sch_netem),
//  * 50 ms latency and arbitrary re-chunking from a user-space relay (delay_relay.hpp; runs
//    everywhere, no privilege needed),
//
// each call completing or failing with a tether error within its deadline, no reply reaching
// the wrong caller, no acknowledged call lost (expect_sound). The peer-end faults are in
// peer_faults_test.cpp.

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "delay_relay.hpp"
#include "netns_util.hpp"
#include "test_util.hpp"
#include "tether/service/serve.hpp"
#include "workload.hpp"

namespace tether::testing {
namespace {

using namespace std::chrono_literals;

constexpr std::chrono::milliseconds kSlack = 3s;

// ------------------------------------------------------------ latency and re-chunking (relay)

class RelayTest : public LoopTest {};

WorkloadSpec through(const DelayRelay& relay, int sync_calls, int pipelined_calls, int callbacks,
                     std::chrono::milliseconds deadline) {
  WorkloadSpec s;
  s.host = "127.0.0.1";
  s.port = relay.port();
  s.sync_calls = sync_calls;
  s.pipelined_calls = pipelined_calls;
  s.callbacks = callbacks;
  s.deadline = deadline;
  return s;
}

TEST_F(RelayTest, CallsThroughA50msRechunkingRelayAllSucceed) {
  fault_counters().reset();
  ServerThread server(fault_service(), fault_serve_options("127.0.0.1"));
  DelayRelay relay(server.port(), 50ms, 24);
  WorkloadSpec s = through(relay, 10, 300, 5, 5s);
  std::vector<Tally> tallies = run(all_workloads(s), 60s);
  for (const Tally& t : tallies) {
    std::printf("relay 50 ms: %s\n", describe(t).c_str());
    EXPECT_EQ(t.failed, 0) << describe(t);
  }
  expect_sound(tallies, fault_counters().executed_ids(), s.deadline, kSlack);
  // The latency was there: a sync call is at least two crossings of the relay.
  EXPECT_GE(tallies[0].longest, 100ms);
  server.stop();
}

TEST_F(RelayTest, DeadlineShorterThanTheLatencyFailsEveryCallWithTimeout) {
  fault_counters().reset();
  ServerThread server(fault_service(), fault_serve_options("127.0.0.1"));
  DelayRelay relay(server.port(), 150ms, 7);
  WorkloadSpec s = through(relay, 3, 50, 3, 100ms);  // a round trip takes 300 ms
  s.generation = rpc::Generation::k5;                // connect() returns without a round trip
  std::vector<Tally> tallies = run(all_workloads(s), 60s);
  for (const Tally& t : tallies) {
    std::printf("relay 150 ms, deadline 100 ms: %s\n", describe(t).c_str());
    EXPECT_EQ(t.ok, 0) << describe(t);
    for (const auto& [what, n] : t.errors) EXPECT_NE(what.find("Timeout"), std::string::npos) << what;
  }
  expect_sound(tallies, fault_counters().executed_ids(), s.deadline, kSlack);
  server.stop();
}

// ------------------------------------------------------------------- network namespaces

/// A server of FaultService in namespace A, clients in namespace B.
class NetnsFaults : public ::testing::Test {
 protected:
  void SetUp() override {
    pair_ = std::make_unique<NetnsPair>();
    if (!pair_->reason().empty()) GTEST_SKIP() << "network namespaces not available: " << pair_->reason();
    fault_counters().reset();
    a_ = std::make_unique<NetnsThread>(pair_->a());
    b_ = std::make_unique<NetnsThread>(pair_->b());
    a_->exec([&]() {
      server_ = std::make_unique<Server>(fault_service(), fault_serve_options(kAddrA));
      server_->start();
      port_ = server_->port();
    });
  }
  void TearDown() override {
    if (b_) b_->stop_tasks();
    if (a_) a_->exec([&]() { server_.reset(); });
    b_.reset();
    a_.reset();
    pair_.reset();
  }

  std::vector<Tally> run_workloads(WorkloadSpec s, Duration limit) {
    s.host = kAddrA;
    s.port = port_;
    return b_->call<std::vector<Tally>>([s]() { return all_workloads(s); }, limit);
  }

  std::unique_ptr<NetnsPair> pair_;
  std::unique_ptr<NetnsThread> a_;
  std::unique_ptr<NetnsThread> b_;
  std::unique_ptr<Server> server_;
  std::uint16_t port_ = 0;
};

/// nft's path, or empty.
std::string nft_program() {
  for (const char* p : {"/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"}) {
    if (::access(p, X_OK) == 0) return p;
  }
  return {};
}

struct Loss {
  int percent;
  std::chrono::milliseconds deadline;
};

void PrintTo(const Loss& l, std::ostream* os) { *os << l.percent << " %, " << l.deadline.count() << " ms"; }

class LossTest : public NetnsFaults, public ::testing::WithParamInterface<Loss> {};

TEST_P(LossTest, CallsCompleteOrFailClearlyWithinTheirDeadline) {
  const int percent = GetParam().percent;
  const std::string nft = nft_program();
  if (nft.empty()) GTEST_SKIP() << "nft is not installed (scripts/deps.sh installs nftables)";
  // Random drop of `percent` % of the packets leaving each end of the pair: both directions.
  for (const auto& [ns, veth] :
       {std::pair{pair_->a(), pair_->veth_a()}, std::pair{pair_->b(), pair_->veth_b()}}) {
    for (const std::string& rule :
         {std::string("add table inet tether_loss"),
          std::string("add chain inet tether_loss out { type filter hook output priority 0; }"),
          "add rule inet tether_loss out oifname \"" + veth + "\" numgen random mod 100 < " +
              std::to_string(percent) + " counter drop"}) {
      std::string out;
      ASSERT_EQ(pair_->exec_in(ns, nft + " '" + rule + "'", &out), 0) << rule << ": " << out;
    }
  }
  WorkloadSpec s;
  s.sync_calls = 15;
  s.pipelined_calls = 2000;
  s.callbacks = 8;
  s.deadline = GetParam().deadline;
  // With a deadline shorter than TCP's retransmission timeout (200 ms at least), calls fail
  // with Timeout and their replies arrive late, while later calls reuse their seqs: a late
  // reply must not be taken for a later call's.
  s.generation = rpc::Generation::k5;
  std::vector<Tally> tallies = run_workloads(s, 90s);
  for (const Tally& t : tallies) {
    std::printf("loss %d %%, deadline %lld ms: %s\n", percent, static_cast<long long>(s.deadline.count()),
                describe(t).c_str());
  }
  expect_sound(tallies, fault_counters().executed_ids(), s.deadline, kSlack);
  if (s.deadline >= 5s && percent <= 5) {
    // TCP retransmits well within 5 s at these rates: nothing may fail.
    for (const Tally& t : tallies) EXPECT_EQ(t.failed, 0) << describe(t);
  }
  for (const std::string& ns : {pair_->a(), pair_->b()}) {
    std::string counters;
    pair_->exec_in(ns, nft + " list chain inet tether_loss out", &counters);
    const std::size_t at = counters.find("counter");
    std::printf("  %s dropped: %s\n", ns.c_str(),
                at == std::string::npos ? "?" : counters.substr(at, counters.find('\n', at) - at).c_str());
  }
}

INSTANTIATE_TEST_SUITE_P(Percent, LossTest,
                         ::testing::Values(Loss{1, 5000ms}, Loss{5, 5000ms}, Loss{20, 5000ms},
                                           Loss{20, 300ms}),
                         [](const ::testing::TestParamInfo<Loss>& info) {
                           return std::to_string(info.param.percent) + "_deadline" +
                                  std::to_string(info.param.deadline.count()) + "ms";
                         });

TEST_F(NetnsFaults, DelayAndReorderingWithNetem) {
  std::string out;
  const std::string qdisc = "delay 50ms 10ms reorder 25% 50%";
  for (const auto& [ns, veth] :
       {std::pair{pair_->a(), pair_->veth_a()}, std::pair{pair_->b(), pair_->veth_b()}}) {
    if (pair_->exec_in(ns, "tc qdisc add dev " + veth + " root netem " + qdisc, &out) != 0) {
      GTEST_SKIP() << "tc netem is not available on this kernel (sch_netem): " << out
                   << "; the relay tests (RelayTest.*) cover 50 ms latency without it";
    }
  }
  WorkloadSpec s;
  s.sync_calls = 10;
  s.pipelined_calls = 200;
  s.callbacks = 5;
  s.deadline = 5s;
  std::vector<Tally> tallies = run_workloads(s, 90s);
  for (const Tally& t : tallies) {
    std::printf("netem %s: %s\n", qdisc.c_str(), describe(t).c_str());
    EXPECT_EQ(t.failed, 0) << describe(t);
  }
  expect_sound(tallies, fault_counters().executed_ids(), s.deadline, kSlack);
}

}  // namespace
}  // namespace tether::testing
