// The typed stream suite over the stream types of this layer. tests/net/ instantiates it for
// TCP, Unix sockets and TLS.
#include "stream_suite.hpp"

namespace tether::testing {

using LocalStreamFactories =
    ::testing::Types<SocketPairFactory, PipePairFactory, MemPipeFactory, MemPipeByteFactory>;
INSTANTIATE_TYPED_TEST_SUITE_P(Local, StreamSuite, LocalStreamFactories, FactoryNames);

}  // namespace tether::testing
