// Must NOT compile: a generic lambda has no one signature to lend to the peer. CTest checks
// that the compiler refuses it with tether's own message (rpc.compile_fail.generic_lambda).
#include "tether/rpc/connection.hpp"

int main() {
  auto generic = [](auto x) { return x; };
  tether::Any a = tether::to_any(generic);
  (void)a;
}
