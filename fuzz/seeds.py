#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/seed-*): a few valid and
near-valid inputs each, in the layout the target reads (parameter bytes first, see each
*_fuzz.cpp). Uses stock RPyC's brine for the values. Rerun after changing a target's input
layout: /usr/bin/python3 fuzz/seeds.py (files named seed-* are replaced; other corpus files are kept)."""

import base64
import json
import os
import struct
import zlib

from rpyc.core import brine

HERE = os.path.dirname(os.path.abspath(__file__))


def frame(payload, flag=None, trailer=b"\n"):
    body = payload
    if flag is None:
        flag = 1 if len(payload) > 3000 else 0
        if flag:
            body = zlib.compress(payload, 1)
    elif flag:
        body = zlib.compress(payload, 1)
    return struct.pack(">IB", len(body), flag) + body + trailer


VALUES = [
    None, True, False, 0, 1, -48, 159, 160, -49, 2**63, -(2**70), 10**300, 1.5, float("inf"),
    complex(1, -2), b"", b"a", b"abcd", b"x" * 300, "", "h\u00e9llo \u20ac", "x" * 300, (), (1,),
    (1, 2, 3, 4), tuple(range(10)), frozenset([1, "a", (2, 3)]), slice(1, None, -1), Ellipsis,
    NotImplemented,
    # RPyC 5.x messages: a request (CALL with an id_pack), a reply, an exception.
    (1, 42, (7, ((4, ("builtins.method", 140234, 9999)), (1, (1, 2)), (1, ())))),
    (2, 42, (1, 3)),
    (3, 7, (("builtins", "ValueError"), ("bad",), (), "Traceback...")),
]
MESSAGES = [brine.dump(v) for v in VALUES]


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def main():
    for target in ("frame", "inflate", "brine", "stream", "channel", "rpc", "registry", "etcd"):
        d = os.path.join(HERE, "corpus", target)
        if os.path.isdir(d):
            for n in os.listdir(d):
                if n.startswith("seed-"):
                    os.remove(os.path.join(d, n))

    frames_ok = b"".join(frame(m) for m in MESSAGES[-3:])
    big = frame(b"".join(MESSAGES) * 20)  # compressed (> 3000 bytes)
    streams = {
        "ok": frames_ok,
        "compressed": big + frame(b"tail"),
        "empty-frames": frame(b"") + frame(b"x") + frame(b""),
        "small-compressed": frame(b"abc", flag=1),
        "bad-flag": frame(b"abc") + frame(b"xyz", flag=7),
        "bad-trailer": frame(b"abc", trailer=b"\x00"),
        "truncated": frame(b"abcdef")[:-3],
        "huge-length": b"\xff\xff\xff\xff\x00",
        "bomb": frame(b"\0" * 200000, flag=1),
    }
    # frame: 2 option bytes, plan seed, modes, then the wire.
    for name, w in streams.items():
        write("frame", name, b"\x00\x00\x00\x55" + w)
        write("frame", name + "-chunked-lax", b"\x01\x00\x07\xaa" + w)
    write("frame", "small-limits", b"\x06\x02\x03\x0f" + streams["compressed"])
    # channel: 2 option bytes, plan seed, 2 mode bytes, then the wire.
    for name, w in streams.items():
        write("channel", name, b"\x00\x00\x00\x00\x00" + w)
        write("channel", name + "-chunked-peek", b"\x10\x00\x05\xe4\x1b" + w)
    # inflate: 2 limit bytes, then a zlib stream.
    for level in (1, 6, 9):
        write("inflate", "level%d" % level, b"\x00\x40" + zlib.compress(b"".join(MESSAGES), level))
    write("inflate", "bomb", b"\x01\x00" + zlib.compress(b"\0" * 100000, 9))
    write("inflate", "default-limit", b"\x80\x00" + zlib.compress(b"hello" * 100, 1))
    write("inflate", "trailing", b"\x00\x40" + zlib.compress(b"hello", 1) + b"xx")
    write("inflate", "raw-deflate", b"\x00\x40" + zlib.compress(b"hello", 1)[2:-4])
    # brine: 2 limit bytes, 2 choice bytes, then one value.
    for i, m in enumerate(MESSAGES):
        write("brine", "v%02d" % i, b"\x00\x00\xe4\x1b" + m)
    write("brine", "limits", b"\x1f\x03\x55\x55" + MESSAGES[-3])
    write("brine", "trailing", b"\x00\x00\x00\x00" + MESSAGES[0] + b"\x00")
    # stream: limit byte, plan seed, op count, ops, then the data.
    lines = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nhello\nworld\nno newline at the end"
    ops = [
        bytes([3, 0, 0]),                       # read_until "\n" (readline)
        bytes([2, 2]) + b"\r\n" + bytes([0]),   # read_until "\r\n"
        bytes([1, 5]),                          # read_exactly(5)
        bytes([0, 7]),                          # read(7)
        bytes([4, 7]) + b"\r?\n\r?\n" + bytes([0]),  # read_until_regex
        bytes([6, 9]),                          # streaming read_exactly(9)
        bytes([5, 0]),                          # read_until_close
    ]
    body = b"".join(ops)
    write("stream", "mixed", bytes([0, 0, len(ops) - 1]) + body + lines)
    write("stream", "mixed-chunked", bytes([0, 3, len(ops) - 1]) + body + lines)
    write("stream", "small-limit", bytes([8, 9, 2]) + bytes([4, 3]) + b"a+b" + bytes([6]) + bytes([3, 0, 0, 5, 0]) + b"aaaaaaaaaaaaaaaaaaaaab\n" * 3)
    write("stream", "regex-anchors", bytes([0, 1, 1]) + bytes([4, 5]) + b"^ab$|" + bytes([0, 4, 6]) + b"\\bx\\b" + bytes([0]) + b"ab x yx x\n")
    rpc_seeds()
    registry_seeds()
    etcd_seeds()


# rpc: a mode byte (bit 0 client, bits 1-2 generation 5/6/auto5/auto6, bit 3 fast decoder off,
# bit 4 all frames at once, bit 5 small limits, bit 6 reset at the end), then the peer's
# payloads, each as [u16 little-endian length][payload].
ROOT = ("fuzz.Root", 1, 1)  # rpc_fuzz.cpp's root (a fixed id_pack)
CALL, CLOSE, GETROOT, GETATTR, CALLATTR, STR, DEL, PING = 7, 2, 3, 4, 8, 10, 15, 1


def msg(gen, kind, seq, body):
    if gen == 6:
        return bytes([kind]) + brine.dump((seq, body))
    return brine.dump((kind, seq, body))


def req(gen, seq, handler, boxed_args):
    return msg(gen, 1, seq, (handler, boxed_args))


def rpc_input(mode, payloads):
    return bytes([mode]) + b"".join(struct.pack("<H", len(p)) + p for p in payloads)


def rpc_seeds():
    exc = (("builtins", "ValueError"), ("bad",), (), "Traceback (most recent call last): ...")
    peer_fn = (4, ("builtins.function", 99, 1))  # a callable of the peer's
    for gen, gbits in ((5, 0), (6, 2)):
        v = lambda k, s, b: msg(gen, k, s, b)
        r = lambda s, h, a: req(gen, s, h, a)
        getroot = r(0, GETROOT, (1, ()))
        serve = {
            "getroot": [getroot],
            "callattr": [getroot, r(1, CALLATTR, (2, ((3, ROOT), (1, "add"), (1, (1, 2)), (1, ()))))],
            "getattr": [r(2, GETATTR, (2, ((3, ROOT), (1, "answer")))),
                        r(3, GETATTR, (2, ((3, ROOT), (1, "echo"))))],
            "fail": [r(1, CALLATTR, (2, ((3, ROOT), (1, "fail"), (1, ("no",)), (1, ()))))],
            # root.call(fn, 5): the connection calls fn(5) on the peer (seq 0); the input replies.
            "callback-reply": [r(4, CALLATTR, (2, ((3, ROOT), (1, "call"), (2, (peer_fn, (1, 5))), (1, ())))),
                               v(2, 0, (1, 10))],
            "callback-exception": [r(4, CALLATTR, (2, ((3, ROOT), (1, "call"), (2, (peer_fn, (1, 5))), (1, ())))),
                                   v(3, 0, exc)],
            "make-del": [r(5, CALLATTR, (2, ((3, ROOT), (1, "make"), (1, ()), (1, ())))),
                         r(6, DEL, (2, ((3, ROOT), (1, 1)))), r(7, DEL, (2, ((3, ("builtins.function", 5, 2)), (1, 1))))],
            "ping-close": [r(8, PING, (1, ("hello",))), r(9, CLOSE, (1, ()))],
            "echo-ref": [r(1, CALLATTR, (2, ((3, ROOT), (1, "echo"), (2, (peer_fn,)), (1, ()))))],
        }
        for name, ps in serve.items():
            # The root is lent (and so known to the connection) once GETROOT asked for it.
            write("rpc", "v%d-serve-%s" % (gen, name), rpc_input(gbits, ps if ps[0] == getroot else [getroot] + ps))
        write("rpc", "v%d-serve-all-at-once-slow" % gen,
              rpc_input(gbits | 8 | 16 | 32, serve["callattr"] + serve["callback-reply"] + serve["make-del"]))
        write("rpc", "v%d-serve-reset" % gen, rpc_input(gbits | 64, [getroot] + serve["callback-reply"][:1]))
        # The client: GETROOT (seq 0), then root.compute(7) (seq 0 again: a freed seq is reused),
        # then str() of the result when it is a reference.
        peer_root = (4, ("peer.Root", 5, 1))
        client = {
            "value": [v(2, 0, peer_root), v(2, 0, (1, 14))],
            "exception": [v(2, 0, peer_root), v(3, 0, exc)],
            "ref-str": [v(2, 0, peer_root), v(2, 0, (4, ("peer.Thing", 6, 2))), v(2, 0, (1, "a thing"))],
            "getroot-exception": [v(3, 0, exc)],
            "peer-close": [r(0, CLOSE, (1, ()))],
            "peer-calls-back": [r(3, GETATTR, (2, ((3, ROOT), (1, "answer")))), v(2, 0, peer_root)],
        }
        for name, ps in client.items():
            write("rpc", "v%d-client-%s" % (gen, name), rpc_input(gbits | 1, ps))
    # auto generation: a 5.x peer answering a 6.x first request, and the reverse; a server
    # detecting the generation from the first message.
    write("rpc", "auto-client6-peer5", rpc_input(1 | 6, [msg(5, 2, 0, (4, ("peer.Root", 5, 1)))]))
    write("rpc", "auto-client5-peer6-close", rpc_input(1 | 4, [req(6, 0, CLOSE, (1, ()))]))
    write("rpc", "auto-serve6", rpc_input(4, [req(6, 0, GETROOT, (1, ())), b"\x77garbage"]))


# registry: one datagram, as RPyC's registry clients and servers send them (wire spec §16).
def registry_seeds():
    d = {
        "register": ("RPYC", "REGISTER", (("CALCULATOR", "MATH"), 18812)),
        "unregister": ("RPYC", "UNREGISTER", (18812,)),
        "query": ("RPYC", "QUERY", ("CALCULATOR",)),
        "list": ("RPYC", "LIST", ((None,),)),
        "list-filter": ("RPYC", "LIST", (("10.0.0.1",),)),
        "lowercase-command": ("RPYC", "query", ("calc",)),
        "bad-port": ("RPYC", "REGISTER", (("X",), 70000)),
        "bad-magic": ("RPYX", "QUERY", ("X",)),
        "ok-reply": "OK",
        "query-reply": (("127.0.0.1", 18812), ("::1", 18813)),
        "query-reply-empty": (),
        "list-reply": ("CALCULATOR", "MATH"),
        "list-reply-refused": None,
    }
    for name, v in d.items():
        write("registry", name, brine.dump(v))
    write("registry", "truncated", brine.dump(d["register"])[:-3])


# etcd: a status selector (0: HTTP 200, 1: 400, 2: 401, 3: 404, 4: 500, 5: 503), a prefix
# selector (0: "/tether/services/"), then the body as etcd's JSON gateway sends it.
def etcd_seeds():
    b64 = lambda t: base64.b64encode(t.encode()).decode()
    pre = "/tether/services/"
    key = pre + "CALCULATOR/127.0.0.1:18812"
    value = json.dumps({"generation": 5, "tls": False, "weight": 3})
    header = {"cluster_id": "14841639068965178418", "member_id": "10276657743932975437",
              "revision": "42", "raft_term": "2"}
    kv = {"key": b64(key), "create_revision": "40", "mod_revision": "41", "version": "2",
          "value": b64(value), "lease": "7587862072907452420"}
    watch = [
        {"result": {"header": header, "created": True}},
        {"result": {"header": header, "events": [{"kv": kv},
                                                 {"type": "DELETE", "kv": {"key": b64(pre + "MATH/[::1]:18813")}}]}},
        {"result": {"header": header, "compact_revision": "30"}},
        {"result": {"header": header, "canceled": True, "cancel_reason": "no leader"}},
        {"error": {"grpc_code": 14, "http_code": 503, "message": "etcdserver: no leader", "http_status": "Unavailable"}},
    ]
    bodies = {
        "range": (0, {"header": header, "kvs": [kv, dict(kv, key=b64(pre + "MATH/[::1]:18813"))], "count": "2"}),
        "range-empty": (0, {"header": header}),
        "grant": (0, {"header": header, "ID": "7587862072907452420", "TTL": "10"}),
        "keepalive": (0, {"result": {"header": header, "ID": "7587862072907452420", "TTL": "9"}}),
        "auth": (0, {"header": header, "token": "kLgeGmyNmjBHgBqE.12"}),
        "error-unavailable": (5, {"error": "etcdserver: no leader", "code": 14, "message": "etcdserver: no leader"}),
        "error-token": (2, {"error": "etcdserver: invalid auth token", "code": 16, "message": "etcdserver: invalid auth token"}),
        "error-other": (1, {"error": "etcdserver: requested lease not found", "code": 5}),
    }
    for name, (st, body) in bodies.items():
        write("etcd", name, bytes([st, 0]) + json.dumps(body).encode())
    write("etcd", "watch-stream", bytes([0, 0]) + "\n".join(json.dumps(w) for w in watch).encode())
    write("etcd", "service-entry", bytes([0, 0]) + b"[::1]:18813\n" + value.encode())
    write("etcd", "not-json", bytes([4, 0]) + b"404 page not found\n")


if __name__ == "__main__":
    main()
