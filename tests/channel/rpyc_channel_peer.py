"""Test peer for tests/channel: stock RPyC's Channel (rpyc.core.channel.Channel) over a
PipeStream on this process's stdin/stdout.

    python3 rpyc_channel_peer.py <compress: 0|1>

1. Sends one "hello" frame: b"hello rpyc=<version> zlib=<runtime zlib version>".
2. Then, for every frame received (Channel.recv):
     b"CMD:empty"   -> sends an empty frame, then b"after-empty"
     anything else  -> sends the payload back with Channel.send (RPyC's own encoding)
3. Exits 0 at EOF. Exit 3 means rpyc could not be imported.
"""
import os
import sys

try:
    import rpyc
    from rpyc.core.channel import Channel
    from rpyc.core.stream import PipeStream
except ImportError as exc:  # the C++ test turns this into a failure with this message
    sys.stderr.write("rpyc_channel_peer: cannot import rpyc (%s); install python3-rpyc\n" % exc)
    sys.exit(3)
import zlib


def main():
    compress = sys.argv[1] == "1"
    incoming = os.fdopen(0, "rb", buffering=0)
    outgoing = os.fdopen(1, "wb", buffering=0)
    channel = Channel(PipeStream(incoming, outgoing), compress=compress)
    hello = "hello rpyc=%s zlib=%s" % (rpyc.__version__, zlib.ZLIB_RUNTIME_VERSION)
    channel.send(hello.encode())
    while True:
        try:
            data = channel.recv()
        except EOFError:
            return 0
        if data == b"CMD:empty":
            channel.send(b"")
            channel.send(b"after-empty")
        else:
            channel.send(data)


if __name__ == "__main__":
    sys.exit(main())
