#!/usr/bin/python3
"""A stock Python RPyC client calling `add(1, 2)` against a tether server and against a Python
ThreadedServer serving the same function, in interleaved rounds of the same length.

usage: /usr/bin/python3 bench/python_client_bench.py CALC_SERVER [--seconds S] [--rounds N]
                                                     [--pattern lookup|bound|both]
                                                     [--busy-poll-us N]

CALC_SERVER is the built examples/calc_server program (tether). The Python server runs in a
child interpreter with a service exposing the same `add`. The client is the same in both cases,
and calls in one of two common ways (both by default, each round measuring all four pairings):

  lookup  `conn.root.add(1, 2)` each time: RPyC's client does a GETATTR and a CALL round trip
          and sends an asynchronous DEL for the method's netref, against either server
  bound   `add = conn.root.add` once, then `add(1, 2)`: one CALL round trip per call

calc_server runs three ways: as it comes (ServerOptions::busy_poll's default: adaptive busy
polling, the loop spinning before it sleeps only while requests arrive in quick succession),
with busy polling off (--busy-poll-us 0), and with a fixed spin of --busy-poll-us N (default
200; 0 leaves that one out). A spinning loop serves a request without waking a sleeping
thread, and the reply is often there before the client's own poll() would have put it to
sleep. Every tether figure is reported.

Only the ratio of the figures, taken minutes apart on the same machine, means anything:
see docs/performance.md on noisy VMs.
"""
import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

import rpyc

PY_SERVER = r"""
import sys
import rpyc
from rpyc.utils.server import ThreadedServer

class CalcService(rpyc.Service):
    def exposed_add(self, a, b):
        return a + b

server = ThreadedServer(CalcService, hostname="127.0.0.1", port=0)
print(f"listening on 127.0.0.1:{server.port}", flush=True)
server.start()
"""


def start(argv):
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    if not line.startswith("listening on "):
        proc.kill()
        sys.exit(f"python_client_bench: {argv[0]} did not start (printed {line!r})")
    port = int(line.rsplit(":", 1)[1])
    return proc, port


def cpu_seconds():
    """User plus system CPU time this process has used (the client has no other threads)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def measure(port, seconds, pattern):
    """Sync calls for `seconds`: (calls per second, p50 us, p99 us, client CPU us per call)."""
    conn = rpyc.connect("127.0.0.1", port)
    try:
        root = conn.root
        if pattern == "lookup":
            def add(a, b):
                return root.add(a, b)
        else:
            add = root.add  # the netref of the bound method, kept: only CALLs from here on
        for _ in range(200):  # warm-up: connection, caches, the server's first requests
            add(1, 2)
        lat = []
        cpu0 = cpu_seconds()
        start = time.perf_counter()
        end = start + seconds
        now = start
        while now < end:
            t0 = now
            if add(1, 2) != 3:
                sys.exit("python_client_bench: wrong result")
            now = time.perf_counter()
            lat.append((now - t0) * 1e6)
        rate = len(lat) / (now - start)
        cpu = (cpu_seconds() - cpu0) / len(lat) * 1e6
    finally:
        conn.close()
    lat.sort()
    return rate, lat[len(lat) // 2], lat[len(lat) * 99 // 100], cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("calc_server")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pattern", choices=["lookup", "bound", "both"], default="both")
    ap.add_argument("--busy-poll-us", type=int, default=200)
    args = ap.parse_args()
    if not os.access(args.calc_server, os.X_OK):
        sys.exit(f"python_client_bench: {args.calc_server} is not an executable")
    if args.busy_poll_us < 0:
        sys.exit("python_client_bench: --busy-poll-us must not be negative")
    patterns = ["lookup", "bound"] if args.pattern == "both" else [args.pattern]

    # (label, argv): the Python server last, so that each round measures the tether servers
    # and the Python one back to back.
    servers = [("tether (default: adaptive)", [args.calc_server, "--host", "127.0.0.1", "--port", "0"]),
               ("tether busy-poll off", [args.calc_server, "--host", "127.0.0.1", "--port", "0",
                                         "--busy-poll-us", "0"])]
    if args.busy_poll_us:
        servers.append((f"tether busy-poll {args.busy_poll_us} us",
                        [args.calc_server, "--host", "127.0.0.1", "--port", "0",
                         "--busy-poll-us", str(args.busy_poll_us)]))
    servers.append(("Python ThreadedServer", [sys.executable, "-c", PY_SERVER]))
    procs = []
    try:
        ports = []
        for _, argv in servers:
            proc, port = start(argv)
            procs.append(proc)
            ports.append(port)
        print(f"stock RPyC {rpyc.__version__} client, add(1, 2) ({', '.join(patterns)}): {args.rounds} "
              f"interleaved rounds of {args.seconds:.1f} s against each server", flush=True)
        figs = {p: [[] for _ in servers] for p in patterns}  # pattern -> per server, per round
        for i in range(args.rounds):
            for p in patterns:
                for k, port in enumerate(ports):
                    figs[p][k].append(measure(port, args.seconds, p))
                print(f"  round {i + 1} {p:6}: " + ", ".join(
                    f"{label} {figs[p][k][-1][0]:.0f}" for k, (label, _) in enumerate(servers)) + " calls/s",
                    flush=True)
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    for p in patterns:
        report(p, [label for label, _ in servers], figs[p])


def report(pattern, labels, figs):
    def med(server_figs, k):
        return statistics.median(f[k] for f in server_figs)

    call = "conn.root.add(1, 2): GETATTR + CALL + async DEL" if pattern == "lookup" else \
        "add(1, 2) on a kept netref: one CALL"
    print(f"{pattern}: {call}")
    py = figs[-1]
    p_rate = med(py, 0)
    p_wall = 1e6 / p_rate
    for label, f in zip(labels, figs):
        rate, cpu = med(f, 0), med(f, 3)
        wall = 1e6 / rate
        print(f"  Python client -> {label:26} {rate:8.0f} calls/s   p50 {med(f, 1):6.1f} us   "
              f"p99 {med(f, 2):6.1f} us   client CPU {cpu:6.1f} us/call, waiting {max(wall - cpu, 0):6.1f} us")
    for label, f in zip(labels[:-1], figs[:-1]):
        # A call cannot take less than the client's own CPU time, so no server could push the
        # ratio above (time per call against Python) / (client CPU per call against this one).
        print(f"  ratio {label} / Python: {med(f, 0) / p_rate:.2f}x   (aim: >= 1.5x); "
              f"ceiling with this client CPU: {p_wall / med(f, 3):.2f}x")


if __name__ == "__main__":
    main()
