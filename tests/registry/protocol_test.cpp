// The registry datagram codec (byte-exact against the captures of wire spec §15.6), its
// refusals, reply truncation, allowed networks and registry URLs.

#include "tether/registry/protocol.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "tether/brine/codec.hpp"
#include "tether/brine/value.hpp"
#include "tether/registry/networks.hpp"
#include "tether/registry/registry_url.hpp"

namespace tether::registry {
namespace {

using brine::Value;

Bytes hex(std::string_view text) {
  Bytes out;
  for (std::size_t i = 0; i + 1 < text.size();) {
    if (text[i] == ' ') {
      ++i;
      continue;
    }
    out.append(std::string(1, static_cast<char>(std::stoi(std::string(text.substr(i, 2)), nullptr, 16))));
    i += 2;
  }
  return out;
}

// --- the captures of wire spec §15.6 ---------------------------------------------------------

TEST(RegistryCodec, RegisterIsByteExact) {
  Bytes expected =
      hex("12 08 0d 52 50 59 43 08 0e 08 52 45 47 49 53 54 45 52 11 11 08 0c 46 4f 4f 08 0c 42 41 52 16 05 "
          "33 35 31 35 35");
  EXPECT_EQ(encode_register({"FOO", "BAR"}, 35155), expected);
  Result<Request, DecodeError> r = decode_request(expected.span());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->command, Command::kRegister);
  EXPECT_EQ(r->aliases, (std::vector<std::string>{"FOO", "BAR"}));
  EXPECT_EQ(r->port, 35155);
}

TEST(RegistryCodec, RepliesAndOtherRequestsAreByteExact) {
  EXPECT_EQ(encode_ok_reply(), hex("08 0b 4f 4b"));
  EXPECT_EQ(encode_query("foo"), hex("12 08 0d 52 50 59 43 08 0e 05 51 55 45 52 59 10 08 0c 66 6f 6f"));
  EXPECT_EQ(encode_query_reply({{"127.0.0.1", 12345}}),
            hex("10 11 08 0e 09 31 32 37 2e 30 2e 30 2e 31 16 05 31 32 33 34 35"));
  EXPECT_EQ(encode_list(std::nullopt), hex("12 08 0d 52 50 59 43 08 0d 4c 49 53 54 10 10 00"));
  EXPECT_EQ(encode_query_reply({}), hex("02"));
  EXPECT_EQ(encode_list_reply(std::nullopt), hex("00"));
}

TEST(RegistryCodec, EveryCommandRoundTrips) {
  Result<Request, DecodeError> u = decode_request(encode_unregister(18861).span());
  ASSERT_TRUE(u);
  EXPECT_EQ(u->command, Command::kUnregister);
  EXPECT_EQ(u->port, 18861);
  Result<Request, DecodeError> q = decode_request(encode_query("calc").span());
  ASSERT_TRUE(q);
  EXPECT_EQ(q->command, Command::kQuery);
  EXPECT_EQ(q->name, "calc");
  Result<Request, DecodeError> l = decode_request(encode_list(std::string("10.0.0.1")).span());
  ASSERT_TRUE(l);
  EXPECT_EQ(l->command, Command::kList);
  EXPECT_EQ(l->filter_host, "10.0.0.1");
  Result<Request, DecodeError> all = decode_request(encode_list(std::nullopt).span());
  ASSERT_TRUE(all);
  EXPECT_FALSE(all->filter_host);
}

TEST(RegistryCodec, CommandIsCaseInsensitive) {
  Bytes b = brine::dump(Value::make_tuple("RPYC", "qUeRy", Value::make_tuple("x")));
  Result<Request, DecodeError> r = decode_request(b.span());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->command, Command::kQuery);
}

TEST(RegistryCodec, RepliesDecode) {
  EXPECT_TRUE(is_ok_reply(encode_ok_reply().span()));
  EXPECT_FALSE(is_ok_reply(brine::dump(Value("NO")).span()));
  EXPECT_FALSE(is_ok_reply(hex("08").span()));
  std::vector<HostPort> in = {{"10.0.0.1", 1}, {"fd00::5", 65535}};
  EXPECT_EQ(decode_query_reply(encode_query_reply(in).span()), in);
  EXPECT_FALSE(decode_query_reply(brine::dump(Value::make_tuple(Value::make_tuple("h", 0))).span()));
  EXPECT_FALSE(decode_query_reply(brine::dump(Value::make_tuple(Value::make_tuple(1, 2))).span()));
  auto listed = decode_list_reply(encode_list_reply(std::vector<std::string>{"A", "B"}).span());
  ASSERT_TRUE(listed && *listed);
  EXPECT_EQ(**listed, (std::vector<std::string>{"A", "B"}));
  auto refused = decode_list_reply(encode_list_reply(std::nullopt).span());
  ASSERT_TRUE(refused);
  EXPECT_FALSE(*refused);
  EXPECT_FALSE(decode_list_reply(brine::dump(Value(3)).span()));
}

// --- refusals ----------------------------------------------------------------------------------

DecodeError error_of(const Bytes& b) {
  Result<Request, DecodeError> r = decode_request(b.span());
  EXPECT_FALSE(r) << "decoded: " << (r ? to_string(r->command) : "");
  return r ? DecodeError::kGarbage : r.error();
}

TEST(RegistryCodec, RefusesGarbageWrongMagicUnknownCommandsAndBadArguments) {
  EXPECT_EQ(error_of(Bytes()), DecodeError::kGarbage);
  EXPECT_EQ(error_of(hex("ff ff ff")), DecodeError::kGarbage);
  Bytes truncated = encode_query("calc");
  truncated.resize(truncated.size() - 1);
  EXPECT_EQ(error_of(truncated), DecodeError::kGarbage);
  Bytes trailing = encode_query("calc");
  trailing.append("x");
  EXPECT_EQ(error_of(trailing), DecodeError::kGarbage);
  EXPECT_EQ(error_of(Bytes::filled(kMaxDatagram + 1, 0x02)), DecodeError::kGarbage);

  EXPECT_EQ(error_of(brine::dump(Value("RPYC"))), DecodeError::kBadMagic);
  EXPECT_EQ(error_of(brine::dump(Value::make_tuple(Value::bytes("RPYC"), "QUERY", Value::make_tuple("x")))),
            DecodeError::kBadMagic);
  EXPECT_EQ(error_of(brine::dump(Value::make_tuple("rpyc", "QUERY", Value::make_tuple("x")))),
            DecodeError::kBadMagic);
  EXPECT_EQ(error_of(brine::dump(Value::make_tuple("RPYC", "QUERY"))), DecodeError::kBadMagic);

  EXPECT_EQ(error_of(brine::dump(Value::make_tuple("RPYC", "DELETE", Value::make_tuple("x")))),
            DecodeError::kUnknownCommand);
  EXPECT_EQ(error_of(brine::dump(Value::make_tuple("RPYC", Value::bytes("QUERY"), Value::make_tuple("x")))),
            DecodeError::kUnknownCommand);

  auto bad = [](Value cmd, Value args) {
    return error_of(brine::dump(Value::make_tuple("RPYC", std::move(cmd), std::move(args))));
  };
  EXPECT_EQ(bad("QUERY", Value("x")), DecodeError::kBadArguments);
  EXPECT_EQ(bad("QUERY", Value::make_tuple()), DecodeError::kBadArguments);
  EXPECT_EQ(bad("QUERY", Value::make_tuple(Value::bytes("x"))), DecodeError::kBadArguments);
  EXPECT_EQ(bad("QUERY", Value::make_tuple(std::string(200, 'A'))), DecodeError::kBadArguments);
  EXPECT_EQ(bad("REGISTER", Value::make_tuple(Value::make_tuple("A"), 0)), DecodeError::kBadArguments);
  EXPECT_EQ(bad("REGISTER", Value::make_tuple(Value::make_tuple("A"), 65536)), DecodeError::kBadArguments);
  EXPECT_EQ(bad("REGISTER", Value::make_tuple(Value::make_tuple("A"), -1)), DecodeError::kBadArguments);
  EXPECT_EQ(bad("REGISTER", Value::make_tuple(Value::make_tuple("A"), true)), DecodeError::kBadArguments);
  EXPECT_EQ(bad("REGISTER", Value::make_tuple(Value::make_tuple(7), 10)), DecodeError::kBadArguments);
  EXPECT_EQ(bad("REGISTER", Value::make_tuple("A", 10)), DecodeError::kBadArguments);
  Value::Tuple many(17, Value("A"));
  EXPECT_EQ(bad("REGISTER", Value::make_tuple(Value::tuple(many), 10)), DecodeError::kBadArguments);
  EXPECT_EQ(bad("UNREGISTER", Value::make_tuple("10")), DecodeError::kBadArguments);
  EXPECT_EQ(bad("LIST", Value::make_tuple()), DecodeError::kBadArguments);
  EXPECT_EQ(bad("LIST", Value::make_tuple(Value())), DecodeError::kBadArguments);
  EXPECT_EQ(bad("LIST", Value::make_tuple(Value::make_tuple(5))), DecodeError::kBadArguments);
}

TEST(RegistryCodec, DeepOrWideValuesAreRefusedWithinBounds) {
  Value deep = Value("x");
  for (int i = 0; i < 50; ++i) deep = Value::make_tuple(std::move(deep));
  EXPECT_EQ(error_of(brine::dump(Value::make_tuple("RPYC", "QUERY", deep))), DecodeError::kGarbage);
  Value::Tuple wide(300, Value(1));
  EXPECT_EQ(error_of(brine::dump(Value::make_tuple("RPYC", "QUERY", Value::tuple(wide)))),
            DecodeError::kGarbage);
}

TEST(RegistryCodec, RandomBytesNeverDecodeToNonsense) {
  std::mt19937 rng(20261207);
  std::uniform_int_distribution<int> len(0, 64);
  std::uniform_int_distribution<int> byte(0, 255);
  const Bytes valid = encode_register({"FOO"}, 1234);
  for (int i = 0; i < 20000; ++i) {
    Bytes b;
    if (i % 2 == 0) {
      for (int n = len(rng); n > 0; --n) b.append(std::string(1, static_cast<char>(byte(rng))));
    } else {  // mutate a valid request
      b = valid;
      b.data()[static_cast<std::size_t>(byte(rng)) % b.size()] = static_cast<std::uint8_t>(byte(rng));
    }
    Result<Request, DecodeError> r = decode_request(b.span());
    if (r && r->command == Command::kRegister) {
      EXPECT_GE(r->port, 1);
      EXPECT_LE(r->aliases.size(), 16u);
    }
  }
}

TEST(RegistryCodec, LongRepliesAreCutToWhatAPythonClientReads) {
  std::vector<HostPort> many;
  for (int i = 0; i < 200; ++i)
    many.push_back({"192.168.100." + std::to_string(i), static_cast<std::uint16_t>(20000 + i)});
  std::size_t kept = 0;
  Bytes reply = encode_query_reply(many, kMaxDatagram, &kept);
  EXPECT_LE(reply.size(), kMaxDatagram);
  EXPECT_GT(kept, 40u);
  EXPECT_LT(kept, many.size());
  std::optional<std::vector<HostPort>> back = decode_query_reply(reply.span());
  ASSERT_TRUE(back);
  EXPECT_EQ(back->size(), kept);
  EXPECT_EQ(back->front(), many.front());  // the oldest first, as RPyC orders them

  std::vector<std::string> names;
  for (int i = 0; i < 2000; ++i) names.push_back("SERVICE_" + std::to_string(i));
  Bytes udp = encode_list_reply(names, kMaxUdpListReply, &kept);
  EXPECT_LE(udp.size(), kMaxUdpListReply);
  EXPECT_GT(kept, 1000u);
  Bytes tcp = encode_list_reply(names, kMaxDatagram, &kept);
  EXPECT_LE(tcp.size(), kMaxDatagram);
}

// --- networks ----------------------------------------------------------------------------------

TEST(NetworkList, PrivateRangesAndLoopback) {
  NetworkList n = NetworkList::private_networks();
  for (const char* ip : {"127.0.0.1", "127.255.0.9", "10.1.2.3", "172.16.0.1", "172.31.255.255",
                         "192.168.1.1", "169.254.3.4", "::1", "fd00::5", "fe80::1%lo", "::ffff:10.0.0.1"}) {
    EXPECT_TRUE(n.contains(std::string_view(ip))) << ip;
  }
  for (const char* ip : {"8.8.8.8", "172.32.0.1", "172.15.255.255", "192.169.0.1", "2001:db8::1",
                         "::ffff:8.8.8.8", "", "not-an-ip", "300.1.1.1"}) {
    EXPECT_FALSE(n.contains(std::string_view(ip))) << ip;
  }
  EXPECT_TRUE(n.contains(Address::loopback_v4(1)));
  EXPECT_FALSE(n.contains(Address::unix_socket("/tmp/x")));
}

TEST(NetworkList, ParseAndPrint) {
  std::string error;
  std::optional<NetworkList> n = NetworkList::parse("10.1.0.0/16, 192.168.7.9 fd00::/8", &error);
  ASSERT_TRUE(n) << error;
  EXPECT_EQ(n->to_string(), "10.1.0.0/16, 192.168.7.9/32, fd00::/8");
  EXPECT_TRUE(n->contains(std::string_view("10.1.200.3")));
  EXPECT_FALSE(n->contains(std::string_view("10.2.0.1")));
  EXPECT_FALSE(n->contains(std::string_view("192.168.7.10")));
  EXPECT_TRUE(
      NetworkList::parse("10.1.2.3/12")->contains(std::string_view("10.0.0.1")));  // host bits cleared
  EXPECT_FALSE(NetworkList::parse("10.0.0.0/33", &error));
  EXPECT_NE(error.find("10.0.0.0/33"), std::string::npos);
  EXPECT_FALSE(NetworkList::parse("10.0.0.0/"));
  EXPECT_FALSE(NetworkList::parse("example.com"));
  EXPECT_TRUE(NetworkList::parse("")->empty());
  EXPECT_TRUE(NetworkList::any().contains(std::string_view("8.8.8.8")));
  EXPECT_TRUE(NetworkList::any().contains(std::string_view("2001:db8::1")));
}

// --- registry URLs ------------------------------------------------------------------------------

TEST(RegistryUrl, ParsesEveryForm) {
  std::optional<RegistryUrl> u = RegistryUrl::parse("udp://255.255.255.255:18811");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->kind, RegistryUrl::Kind::kUdp);
  EXPECT_EQ(u->host, "255.255.255.255");
  EXPECT_EQ(u->port, 18811);
  u = RegistryUrl::parse("tcp://10.0.0.5");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->kind, RegistryUrl::Kind::kTcp);
  EXPECT_EQ(u->port, kRegistryPort);
  EXPECT_EQ(u->client_options().transport, RegistryTransport::kTcp);
  u = RegistryUrl::parse("[fd00::5]:4000");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->kind, RegistryUrl::Kind::kUdp);
  EXPECT_EQ(u->host, "fd00::5");
  EXPECT_EQ(u->port, 4000);
  EXPECT_EQ(u->to_string(), "udp://[fd00::5]:4000");
  u = RegistryUrl::parse("etcd://root:s3cret@127.0.0.1:2379,127.0.0.1:22379,[::1]");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->kind, RegistryUrl::Kind::kEtcd);
  EXPECT_EQ(u->etcd_endpoints, (std::vector<std::string>{"127.0.0.1:2379", "127.0.0.1:22379", "[::1]:2379"}));
  EXPECT_EQ(u->username, "root");
  EXPECT_EQ(u->password, "s3cret");
  EXPECT_EQ(u->to_string(), "etcd://root:***@127.0.0.1:2379,127.0.0.1:22379,[::1]:2379");
}

TEST(RegistryUrl, RefusesMalformedAddresses) {
  std::string error;
  for (const char* bad : {"", "http://x", "udp://", "udp://host:0", "udp://host:70000", "udp://host:12x",
                          "etcd://a:1,,b:2", "etcd://user@h:1", "tcp://[::1"}) {
    EXPECT_FALSE(RegistryUrl::parse(bad, &error)) << bad;
    EXPECT_FALSE(error.empty()) << bad;
  }
}

TEST(RegistryUrl, HostPortHelpers) {
  EXPECT_EQ(join_host_port("10.0.0.1", 80), "10.0.0.1:80");
  EXPECT_EQ(join_host_port("::1", 80), "[::1]:80");
  EXPECT_EQ(split_host_port("[::1]:80", 1), (HostPort{"::1", 80}));
  EXPECT_EQ(split_host_port("::1", 7), (HostPort{"::1", 7}));
  EXPECT_EQ(split_host_port("node-1.example", 7), (HostPort{"node-1.example", 7}));
  EXPECT_FALSE(split_host_port("a b:1", 7));
  EXPECT_FALSE(split_host_port(":1", 7));
}

}  // namespace
}  // namespace tether::registry
