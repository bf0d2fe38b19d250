#pragma once
// Test-time certificates: generated with OpenSSL's C API into a temporary directory the first
// time they are asked for (once per test process), removed at exit. Nothing is committed.

#include <string>

namespace tether::testing {

struct TestCerts {
  std::string dir;
  std::string ca_cert;      ///< the test CA ("tether test CA")
  std::string server_cert;  ///< leaf for localhost, 127.0.0.1 and ::1, signed by the CA
  std::string server_key;
  std::string client_cert;  ///< client leaf (CN=tether test client), signed by the CA
  std::string client_key;
  /// client leaf "CN=client1,O=tether tests" with SANs DNS:client1.example, IP:10.0.0.7,
  /// IP:fd00::7, email:client1@example.com, URI:spiffe://tether.test/client1
  std::string san_client_cert;
  std::string san_client_key;
  std::string self_cert;    ///< a self-signed leaf for localhost, trusted by nobody
  std::string self_key;
};

/// The process-wide set (generated on first use; aborts the test on failure).
const TestCerts& test_certs();

}  // namespace tether::testing
