"""A Python client of examples/json_rpc_server's protocol (the seed notes' asyncore RPC: a
4-byte struct.pack("I") length, then JSON {"in": method, "params": ...}, answered with
{"out": ..., "result": ...}). Starts the server on a free port, checks ping -> pong on two
connections (one pipelining requests), the error replies, then stops it with SIGTERM.

usage: json_rpc_client.py JSON_RPC_SERVER_PROGRAM
"""
import json
import signal
import socket
import struct
import subprocess
import sys


def send(sock, obj=None, raw=None):
    body = raw if raw is not None else json.dumps(obj).encode()
    sock.sendall(struct.pack("I", len(body)) + body)


def recv_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError(f"connection closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def recv(sock):
    (n,) = struct.unpack("I", recv_exactly(sock, 4))
    return json.loads(recv_exactly(sock, n))


def main():
    server = subprocess.Popen([sys.argv[1], "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        assert line.startswith("listening on "), line
        host, port = line.split()[2].rsplit(":", 1)
        a = socket.create_connection((host, int(port)), timeout=10)
        b = socket.create_connection((host, int(port)), timeout=10)

        send(a, {"in": "ping", "params": "ireader 0"})
        assert recv(a) == {"out": "pong", "result": "ireader 0"}

        for i in range(10):  # pipelined: all sent before any reply is read
            send(b, {"in": "ping", "params": f"ireader {i}"})
        for i in range(10):
            assert recv(b) == {"out": "pong", "result": f"ireader {i}"}

        send(a, {"in": "ping", "params": {"nested": [1, 2.5, None, "é"]}})
        assert recv(a) == {"out": "pong", "result": {"nested": [1, 2.5, None, "é"]}}
        send(a, {"in": "nosuch", "params": 1})
        assert recv(a) == {"out": "error", "result": "unknown method nosuch"}
        send(a, raw=b"{not json")
        assert recv(a)["out"] == "error"
        send(a, {"in": "ping", "params": "still here"})
        assert recv(a) == {"out": "pong", "result": "still here"}
        a.close()
        b.close()
        print("json_rpc_client: all replies as expected")
    finally:
        server.send_signal(signal.SIGTERM)
        rc = server.wait(timeout=10)
    assert rc == 0, rc
    return 0


if __name__ == "__main__":
    sys.exit(main())
