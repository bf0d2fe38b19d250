#pragma once
// Stream-pair factories for the typed stream suite (stream_suite.hpp).
//
// A factory is a type with these static members (the net layer adds TCP, Unix and TLS ones in
// tests/net/ and instantiates the same suite):
//
//   static constexpr const char* kName;                  // shown in test names
//   static constexpr tether::ErrorKind kResetError;      // what a peer sees after reset():
//                                                        //   kDisconnected (a real reset) or
//                                                        //   kIncompleteRead (only EOF exists)
//   /// A connected pair on `loop`. A Task so that TCP/TLS setup (connect + accept, handshake)
//   /// can run on the loop; the suite awaits it with a time limit.
//   static tether::Task<tether::StreamPair> make(tether::EventLoop& loop,
//                                                tether::StreamOptions first,
//                                                tether::StreamOptions second);
//   /// Abortive close of `victim` so that reads on `peer` fail as after a connection reset
//   /// (TCP: SO_LINGER {1, 0} then close). Data already written by victim may still arrive
//   /// first. `victim` is closed afterwards.
//   static void reset(tether::BufferedStream& victim, tether::BufferedStream& peer);
//
// Every factory's streams must carry at least 1 MiB in flight without deadlocking a writer
// that waits in drain() while the reader is slow (the kernel or pipe buffers need not hold it
// all: the suite always reads concurrently).

#include <sys/socket.h>

#include <memory>
#include <utility>

#include "tether/base/error.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/loop/task.hpp"
#include "tether/stream/buffered_stream.hpp"
#include "tether/stream/fd_transport.hpp"
#include "tether/stream/mem_pipe.hpp"

namespace tether::testing {

inline StreamPair make_stream_pair(std::unique_ptr<Transport> a, std::unique_ptr<Transport> b,
                                   const StreamOptions& oa, const StreamOptions& ob) {
  StreamPair p;
  p.first = std::make_unique<BufferedStream>(std::move(a), oa);
  p.second = std::make_unique<BufferedStream>(std::move(b), ob);
  return p;
}

/// AF_UNIX socketpair. Reset: a unix socket closed with unread data in its receive queue makes
/// the peer's next read fail with ECONNRESET, so reset() first puts one byte there.
struct SocketPairFactory {
  static constexpr const char* kName = "SocketPair";
  static constexpr ErrorKind kResetError = ErrorKind::kDisconnected;

  static Task<StreamPair> make(EventLoop& loop, StreamOptions first, StreamOptions second) {
    TransportPair t = make_socketpair_transports(loop);
    co_return make_stream_pair(std::move(t.first), std::move(t.second), first, second);
  }
  static void reset(BufferedStream& victim, BufferedStream& peer) {
    const char byte = 'r';
    [[maybe_unused]] auto n = ::send(peer.transport().fd(), &byte, 1, MSG_NOSIGNAL);
    victim.abort();
  }
};

/// Two crossed pipes (a child process's stdio). Pipes have no reset: the peer sees EOF.
struct PipePairFactory {
  static constexpr const char* kName = "PipePair";
  static constexpr ErrorKind kResetError = ErrorKind::kIncompleteRead;

  static Task<StreamPair> make(EventLoop& loop, StreamOptions first, StreamOptions second) {
    TransportPair t = make_pipe_transports(loop);
    co_return make_stream_pair(std::move(t.first), std::move(t.second), first, second);
  }
  static void reset(BufferedStream& victim, BufferedStream&) { victim.abort(); }
};

/// In-memory pipe pair. reset() uses MemPipeEnd::abort().
template <std::size_t kCapacity = (64 << 10), std::size_t kMaxReadChunk = 0>
struct MemPipeFactoryT {
  static constexpr const char* kName = kMaxReadChunk == 1 ? "MemPipeByteAtATime" : "MemPipe";
  static constexpr ErrorKind kResetError = ErrorKind::kDisconnected;
  /// One byte per read makes big transfers slow: keep them to 128 KiB.
  static constexpr std::size_t kBulkBytes = kMaxReadChunk == 1 ? (128 << 10) : (std::size_t{64} << 20);

  static Task<StreamPair> make(EventLoop& loop, StreamOptions first, StreamOptions second) {
    MemPipeOptions o;
    o.capacity = kCapacity;
    o.max_read_chunk = kMaxReadChunk;
    MemPipePair t = make_mem_pipe(loop, o);
    co_return make_stream_pair(std::move(t.first), std::move(t.second), first, second);
  }
  static void reset(BufferedStream& victim, BufferedStream&) {
    static_cast<MemPipeEnd&>(victim.transport()).abort();
    victim.abort();
  }
};

using MemPipeFactory = MemPipeFactoryT<>;
/// Every read returns one byte: exercises every chunk boundary.
using MemPipeByteFactory = MemPipeFactoryT<(64 << 10), 1>;

}  // namespace tether::testing
