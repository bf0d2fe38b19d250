#!/usr/bin/python3
"""A stock Python RPyC client calling `add(1, 2)` against a tether server and against a Python
ThreadedServer serving the same function, in interleaved rounds of the same length.

usage: /usr/bin/python3 bench/python_client_bench.py CALC_SERVER [--seconds S] [--rounds N]
                                                     [--pattern lookup|bound|both]

CALC_SERVER is the built examples/calc_server program (tether). The Python server runs in a
child interpreter with a service exposing the same `add`. The client is the same in both cases,
and calls in one of two common ways (both by default, each round measuring all four pairings):

  lookup  `conn.root.add(1, 2)` each time: RPyC's client does a GETATTR and a CALL round trip
          and sends an asynchronous DEL for the method's netref, against either server
  bound   `add = conn.root.add` once, then `add(1, 2)`: one CALL round trip per call

Only the ratio of the two figures, taken minutes apart on the same machine, means anything:
see ../shared/design/perf-anchors.md on noisy VMs.
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
    args = ap.parse_args()
    if not os.access(args.calc_server, os.X_OK):
        sys.exit(f"python_client_bench: {args.calc_server} is not an executable")
    patterns = ["lookup", "bound"] if args.pattern == "both" else [args.pattern]

    tether, tether_port = start([args.calc_server, "--host", "127.0.0.1", "--port", "0"])
    python, python_port = start([sys.executable, "-c", PY_SERVER])
    print(f"stock RPyC {rpyc.__version__} client, add(1, 2) ({', '.join(patterns)}): {args.rounds} "
          f"interleaved rounds of {args.seconds:.1f} s against each server", flush=True)
    figs = {p: ([], []) for p in patterns}  # pattern -> (against tether, against Python)
    try:
        for i in range(args.rounds):
            for p in patterns:
                t_figs, p_figs = figs[p]
                t_figs.append(measure(tether_port, args.seconds, p))
                p_figs.append(measure(python_port, args.seconds, p))
                print(f"  round {i + 1} {p:6}: tether {t_figs[-1][0]:8.0f} calls/s, "
                      f"python {p_figs[-1][0]:8.0f} calls/s", flush=True)
    finally:
        for proc in (tether, python):
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    for p in patterns:
        report(p, *figs[p])


def report(pattern, t_figs, p_figs):
    def med(figs, k):
        return statistics.median(f[k] for f in figs)

    call = "conn.root.add(1, 2): GETATTR + CALL + async DEL" if pattern == "lookup" else \
        "add(1, 2) on a kept netref: one CALL"
    print(f"{pattern}: {call}")
    t_rate, p_rate = med(t_figs, 0), med(p_figs, 0)
    print(f"  Python client -> tether server     {t_rate:8.0f} calls/s   "
          f"p50 {med(t_figs, 1):6.1f} us   p99 {med(t_figs, 2):6.1f} us")
    print(f"  Python client -> Python ThreadedServer {p_rate:4.0f} calls/s   "
          f"p50 {med(p_figs, 1):6.1f} us   p99 {med(p_figs, 2):6.1f} us")
    print(f"  ratio tether / Python: {t_rate / p_rate:.2f}x   (aim: >= 1.5x)")
    # What the client itself costs bounds what any server can do for it: a call cannot take
    # less than the client's own CPU time, so even a server that answered in no time at all
    # could not push the ratio above (time per call against Python) / (client CPU per call).
    t_cpu, p_cpu = med(t_figs, 3), med(p_figs, 3)
    t_wall, p_wall = 1e6 / t_rate, 1e6 / p_rate
    print(f"  client CPU per call: {t_cpu:.1f} us against tether (waiting {max(t_wall - t_cpu, 0):.1f} us), "
          f"{p_cpu:.1f} us against Python (waiting {max(p_wall - p_cpu, 0):.1f} us)")
    print(f"  ceiling for any server with this client: {p_wall / t_cpu:.2f}x")


if __name__ == "__main__":
    main()
