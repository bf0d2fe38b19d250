"""`tether tap` between a stock Python RPyC client and a stock Python RPyC server (both in this
process): the session (calls, a callback, a remote exception, a compressed payload, netrefs)
must work through the tap, every byte each side sent must arrive unchanged at the other, and
the tap must print the messages decoded.

usage: tap_relay_check.py TETHER_PROGRAM
Exits 0 on success; prints what differs otherwise.
"""
import gc
import subprocess
import sys
import threading

import rpyc
from rpyc.core.stream import SocketStream
from rpyc.utils.server import ThreadedServer

TETHER = sys.argv[1]

# Record what every socket stream of this process reads and writes.
_lock = threading.Lock()
_streams = {}
_orig_read = SocketStream.read
_orig_write = SocketStream.write


def _rec(stream):
    with _lock:
        return _streams.setdefault(id(stream), {"r": bytearray(), "w": bytearray(), "role": None})


def _read(self, count):
    data = _orig_read(self, count)
    _rec(self)["r"] += data
    return data


def _write(self, data):
    _orig_write(self, data)
    _rec(self)["w"] += bytes(data)


SocketStream.read = _read
SocketStream.write = _write


class Service(rpyc.Service):
    def on_connect(self, conn):
        _rec(conn._channel.stream)["role"] = "server"

    def exposed_add(self, a, b):
        return a + b

    def exposed_countdown(self, n, callback):
        for i in range(n, 0, -1):
            callback(i)
        return n

    def exposed_fail(self, message):
        raise ValueError(message)

    def exposed_echo(self, x):
        return x

    def exposed_numbers(self):
        return [1, 2, 3]


def main():
    server = ThreadedServer(Service, hostname="127.0.0.1", port=0)
    server._listen()
    threading.Thread(target=server.start, daemon=True).start()

    tap = subprocess.Popen([TETHER, "tap", "--listen", "127.0.0.1:0", "--to", f"127.0.0.1:{server.port}", "--once",
                            "--width", "120"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = tap.stdout.readline()
    assert first.startswith("listening on "), first
    host, port = first.split()[2].rstrip(",").rsplit(":", 1)

    c = rpyc.connect(host, int(port))
    _rec(c._channel.stream)["role"] = "client"
    assert c.root.add(40, 2) == 42
    seen = []
    assert c.root.countdown(3, seen.append) == 3 and seen == [3, 2, 1], seen
    try:
        c.root.fail("boom")
        raise AssertionError("no exception")
    except ValueError as e:
        assert "boom" in str(e)
    big = bytes(range(256)) * 64  # 16 KiB: compressed frames both ways
    assert c.root.echo(big) == big
    assert list(c.root.numbers()) == [1, 2, 3]
    # The proxies above are gone and their DELs sent; a last sync request makes the client read
    # every reply before it closes (CLOSE itself is never answered), so that both directions can
    # be compared in full.
    gc.collect()
    c.ping()
    c.close()

    out, err = tap.communicate(timeout=20)
    assert tap.returncode == 0, (tap.returncode, err)
    server.close()

    by_role = {}
    for rec in _streams.values():
        if rec["role"]:
            by_role[rec["role"]] = rec
    cl, sv = by_role["client"], by_role["server"]
    ok = True
    for name, sent, got in (("client -> server", cl["w"], sv["r"]), ("server -> client", sv["w"], cl["r"])):
        if sent != got or not sent:
            ok = False
            n = next((i for i in range(min(len(sent), len(got))) if sent[i] != got[i]), min(len(sent), len(got)))
            print(f"{name}: {len(sent)} bytes sent, {len(got)} received, first difference at {n}")
        else:
            print(f"{name}: {len(sent)} bytes relayed byte-identically")
    for needle in ("REQUEST CALLATTR", "REQUEST CALL ", "EXCEPTION ValueError: boom", "zlib ->", "REPLY 42",
                   "REQUEST GETROOT", "#1 closed"):
        if needle not in out:
            ok = False
            print(f"tap output lacks {needle!r}")
    if not ok:
        print(out)
        return 1
    print("\n".join(out.splitlines()[:8]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
