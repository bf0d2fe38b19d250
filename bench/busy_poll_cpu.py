#!/usr/bin/python3
"""What adaptive busy polling (the servers' default) costs a server that has little to do.

usage: /usr/bin/python3 bench/busy_poll_cpu.py CALC_SERVER [--seconds S]

Starts calc_server three ways side by side -- as it comes (adaptive busy polling), with busy
polling off (--busy-poll-us 0) and with a fixed 200 us spin -- and reads each server's CPU time
(user + system, from /proc/PID/stat) over two phases of S seconds (default 10):

  idle        no client at all
  1 call/s    a stock RPyC client calling conn.root.add(1, 2) once a second on each server
              (the calls to the three servers are made back to back, so they see the same
              machine)

and prints each server's CPU as a share of one core, and the adaptive server's extra CPU over
the one that never spins. Aims (issue 25): idle <= 1 %, one call a second <= 2 % extra.
"""
import argparse
import os
import time

import rpyc

from python_client_bench import start  # calc_server on a free port: (process, port)

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_of(pid):
    """User + system CPU seconds of a process, all its threads."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("calc_server")
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    base = [args.calc_server, "--host", "127.0.0.1", "--port", "0"]
    kinds = [("adaptive (default)", base), ("off", base + ["--busy-poll-us", "0"]),
             ("fixed 200 us", base + ["--busy-poll-us", "200"])]
    procs = [start(argv) for _, argv in kinds]
    try:
        time.sleep(0.5)  # let start-up work settle before the first reading
        before = [cpu_of(p.pid) for p, _ in procs]
        time.sleep(args.seconds)
        idle = [cpu_of(p.pid) - b for (p, _), b in zip(procs, before)]

        conns = [rpyc.connect("127.0.0.1", port) for _, port in procs]
        before = [cpu_of(p.pid) for p, _ in procs]
        start_t = time.monotonic()
        n = 0
        while time.monotonic() - start_t < args.seconds:
            for c in conns:
                assert c.root.add(1, 2) == 3
            n += 1
            time.sleep(max(0.0, start_t + n - time.monotonic()))
        light = [cpu_of(p.pid) - b for (p, _), b in zip(procs, before)]
        for c in conns:
            c.close()
    finally:
        for p, _ in procs:
            p.terminate()
            p.wait(timeout=10)
    s = args.seconds
    print(f"server CPU as a share of one core over {s:.0f} s (resolution {100 / TICKS / s:.2f} %):")
    for (label, _), i, l in zip(kinds, idle, light):
        print(f"  {label:20} idle {100 * i / s:5.2f} %   one call a second {100 * l / s:5.2f} %")
    print(f"adaptive minus off: idle {100 * (idle[0] - idle[1]) / s:+.2f} %, one call a second "
          f"{100 * (light[0] - light[1]) / s:+.2f} %   (aims: idle <= 1 %, <= 2 % extra)")


if __name__ == "__main__":
    main()
