#!/usr/bin/env python3
"""ASCII plots of a soak CSV (tests/reliability/soak_test.cpp, make soak).

    scripts/soak_plot.py build/soak.csv [--width 60] [--height 8]

One chart per column (server RSS, open fds, calls per second, p50 and p99 latency), time on the
x axis (each column of the chart is the mean of its share of the samples), the y axis from 0 to
the largest value, so a flat series is a flat line at its own height.
"""
import argparse
import csv
import sys

SERIES = [
    ("rss_kib", "server RSS (KiB)"),
    ("fds", "server open fds"),
    ("calls", "calls completed per second"),
    ("p50_us", "p50 latency (us)"),
    ("p99_us", "p99 latency (us)"),
]


def buckets(values, width):
    n = len(values)
    out = []
    for c in range(min(width, n)):
        lo = c * n // min(width, n)
        hi = max(lo + 1, (c + 1) * n // min(width, n))
        part = values[lo:hi]
        out.append(sum(part) / len(part))
    return out


def chart(title, values, seconds, width, height):
    cols = buckets(values, width)
    top = max(cols) or 1.0
    lines = [f"{title}: min {min(values):.0f}, median {sorted(values)[len(values) // 2]:.0f}, max {max(values):.0f}"]
    for row in range(height, 0, -1):
        level = top * (row - 0.5) / height
        label = f"{top * row / height:>9.0f} |" if row in (height, 1) or row == (height + 1) // 2 else " " * 9 + " |"
        lines.append(label + "".join("#" if v >= level else " " for v in cols))
    lines.append(" " * 9 + "0+" + "-" * len(cols))
    lines.append(" " * 11 + "0 s" + " " * max(1, len(cols) - 3 - len(f"{seconds:.0f} s")) + f"{seconds:.0f} s")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv")
    ap.add_argument("--width", type=int, default=60)
    ap.add_argument("--height", type=int, default=8)
    args = ap.parse_args()
    with open(args.csv, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        sys.exit(f"{args.csv}: no samples")
    seconds = float(rows[-1]["t_s"])
    for key, title in SERIES:
        values = [float(r[key]) for r in rows]
        print(chart(title, values, seconds, args.width, args.height))
        print()


if __name__ == "__main__":
    main()
