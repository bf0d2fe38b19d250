#include "test_certs.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>

namespace tether::testing {

namespace {

void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("test certificate generation failed: ") + what);
}

EVP_PKEY* make_key() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  check(key != nullptr, "EVP_EC_gen");
  return key;
}

void add_ext(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  check(ext != nullptr, "X509V3_EXT_conf_nid");
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

X509* make_cert(EVP_PKEY* key, const char* cn, X509* issuer, EVP_PKEY* issuer_key, bool is_ca, const char* san,
                long serial) {
  X509* cert = X509_new();
  check(cert != nullptr, "X509_new");
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), serial);
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 7L * 24 * 3600);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("tether tests"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn), -1, -1, 0);
  X509* iss = issuer ? issuer : cert;
  X509_set_issuer_name(cert, X509_get_subject_name(iss));
  if (is_ca) {
    add_ext(cert, iss, NID_basic_constraints, "critical,CA:TRUE");
    add_ext(cert, iss, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add_ext(cert, iss, NID_basic_constraints, "critical,CA:FALSE");
    add_ext(cert, iss, NID_key_usage, "critical,digitalSignature,keyEncipherment");
    add_ext(cert, iss, NID_ext_key_usage, "serverAuth,clientAuth");
  }
  add_ext(cert, iss, NID_subject_key_identifier, "hash");
  if (issuer) add_ext(cert, iss, NID_authority_key_identifier, "keyid:always");
  if (san) add_ext(cert, iss, NID_subject_alt_name, san);
  check(X509_sign(cert, issuer_key ? issuer_key : key, EVP_sha256()) > 0, "X509_sign");
  return cert;
}

void write_cert(const std::string& path, X509* cert) {
  FILE* f = std::fopen(path.c_str(), "w");
  check(f != nullptr, "fopen");
  check(PEM_write_X509(f, cert) == 1, "PEM_write_X509");
  std::fclose(f);
}

void write_key(const std::string& path, EVP_PKEY* key) {
  FILE* f = std::fopen(path.c_str(), "w");
  check(f != nullptr, "fopen");
  check(PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr) == 1, "PEM_write_PrivateKey");
  std::fclose(f);
}

TestCerts generate() {
  TestCerts c;
  std::string tmpl = (std::filesystem::temp_directory_path() / "tether-certs-XXXXXX").string();
  check(::mkdtemp(tmpl.data()) != nullptr, "mkdtemp");
  c.dir = tmpl;
  c.ca_cert = c.dir + "/ca.pem";
  c.server_cert = c.dir + "/server.pem";
  c.server_key = c.dir + "/server.key";
  c.client_cert = c.dir + "/client.pem";
  c.client_key = c.dir + "/client.key";
  c.san_client_cert = c.dir + "/client1.pem";
  c.san_client_key = c.dir + "/client1.key";
  c.self_cert = c.dir + "/self.pem";
  c.self_key = c.dir + "/self.key";

  const char* san = "DNS:localhost,IP:127.0.0.1,IP:::1";
  EVP_PKEY* ca_key = make_key();
  X509* ca = make_cert(ca_key, "tether test CA", nullptr, nullptr, true, nullptr, 1);
  EVP_PKEY* server_key = make_key();
  X509* server = make_cert(server_key, "localhost", ca, ca_key, false, san, 2);
  EVP_PKEY* client_key = make_key();
  X509* client = make_cert(client_key, "tether test client", ca, ca_key, false, nullptr, 3);
  EVP_PKEY* san_client_key = make_key();
  X509* san_client = make_cert(san_client_key, "client1", ca, ca_key, false,
                               "DNS:client1.example,IP:10.0.0.7,IP:fd00::7,email:client1@example.com,"
                               "URI:spiffe://tether.test/client1",
                               5);
  EVP_PKEY* self_key = make_key();
  X509* self = make_cert(self_key, "localhost", nullptr, nullptr, false, san, 4);

  write_cert(c.ca_cert, ca);
  write_cert(c.server_cert, server);
  write_key(c.server_key, server_key);
  write_cert(c.client_cert, client);
  write_key(c.client_key, client_key);
  write_cert(c.san_client_cert, san_client);
  write_key(c.san_client_key, san_client_key);
  write_cert(c.self_cert, self);
  write_key(c.self_key, self_key);

  for (X509* x : {ca, server, client, san_client, self}) X509_free(x);
  for (EVP_PKEY* k : {ca_key, server_key, client_key, san_client_key, self_key}) EVP_PKEY_free(k);
  return c;
}

struct CertsHolder {
  TestCerts certs = generate();
  pid_t owner = ::getpid();
  ~CertsHolder() {
    if (::getpid() != owner) return;  // a forked child must not remove the parent's files
    std::error_code ec;
    std::filesystem::remove_all(certs.dir, ec);
  }
};

}  // namespace

const TestCerts& test_certs() {
  static CertsHolder holder;
  return holder.certs;
}

}  // namespace tether::testing
