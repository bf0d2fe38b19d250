#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/seed-*): a few valid and
near-valid inputs each, in the layout the target reads (parameter bytes first, see each
*_fuzz.cpp). Uses stock RPyC's brine for the values. Rerun after changing a target's input
layout: /usr/bin/python3 fuzz/seeds.py (files named seed-* are replaced; other corpus files are kept)."""

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
    for target in ("frame", "inflate", "brine", "stream", "channel"):
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


if __name__ == "__main__":
    main()
