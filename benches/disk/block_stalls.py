#!/usr/bin/env python3
"""The device's own stalls: block requests it held longer than THRESHOLD_MS, from a perf trace.

    perf record -a -k monotonic -e block:block_rq_issue,block:block_rq_complete -o blk.data &
    ... the load ...
    perf script -i blk.data | benches/disk/block_stalls.py [THRESHOLD_MS] [SERVER_LOG]

(`benches/wrk/run.sh --block-trace` does all of this.) Requests are paired issue to completion
by device, sector and length; the slow ones are grouped into episodes (overlapping in time),
each printed with when it began, how long the device held its slowest request, how many requests
and bytes it held, their kinds (perf's: W write, S synchronous, F flush, D discard, M
metadata) and which threads issued them. Then the bytes written per second (median,
max) and the share of requests over 1, 5 and 20 ms.

perf's clock is the kernel's monotonic one; the environment's OFFSET (CLOCK_REALTIME -
CLOCK_MONOTONIC in seconds, read when the trace began) puts it on the wall clock, and with
SERVER_LOG (a maestro JSON log) times are seconds from its first POST, as in
benches/wrk/slow_requests.py, so an episode of slow requests there can be matched to one here.
"""
import collections
import os
import re
import signal
import sys

# The server's log is read as slow_requests.py reads it, so that both count time alike.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "wrk"))
from slow_requests import read_log  # noqa: E402

LINE = re.compile(
    r"^\s*(?P<comm>.+?)\s+\d+\s+\[\d+\]\s+(?P<at>\d+\.\d+):\s+"
    r"block:(?P<event>block_rq_issue|block_rq_complete):\s+"
    r"(?P<device>\d+,\d+)\s+(?P<rwbs>\S+)\s+(?:\d+\s+)?\(\S*\)\s+(?P<sector>\d+)\s+\+\s+(?P<sectors>\d+)"
)


def first_post(path):
    """The wall-clock time of the log's first POST request, as slow_requests.py counts from."""
    posts, _ = read_log(path, "POST")
    if not posts:
        raise SystemExit(f"no POST request in {path}")
    return posts[0][0]


def requests(lines, offset):
    """(issued at, held for in ms, kind, bytes, issuing thread) of each completed request."""
    in_flight = collections.defaultdict(list)
    for line in lines:
        match = LINE.match(line)
        if not match:
            continue
        at = float(match["at"]) + offset
        # A sector is written again and again (the WAL's), but never twice at once.
        key = (match["device"], match["sector"], match["sectors"])
        if match["event"] == "block_rq_issue":
            size = int(match["sectors"]) * 512
            in_flight[key].append((at, match["rwbs"], size, match["comm"].strip()))
        elif in_flight[key]:
            issued, rwbs, size, comm = in_flight[key].pop()
            in_flight[key].clear()  # an issue whose completion the trace lost
            yield issued, (at - issued) * 1000, rwbs, size, comm


def episodes(slow):
    """Slow requests grouped by overlap in time, in the order they began."""
    grouped = []
    for issued, took, rwbs, size, comm in sorted(slow):
        ends = issued + took / 1000
        if grouped and issued <= grouped[-1]["ends"]:
            episode = grouped[-1]
            episode["ends"] = max(episode["ends"], ends)
        else:
            episode = {"begins": issued, "ends": ends, "held": 0.0, "count": 0, "bytes": 0,
                       "threads": collections.Counter(), "kinds": set()}
            grouped.append(episode)
        episode["held"] = max(episode["held"], took)
        episode["count"] += 1
        episode["bytes"] += size
        episode["threads"][comm] += 1
        episode["kinds"].add(rwbs)
    return grouped


def main():
    threshold = float(sys.argv[1]) if len(sys.argv) > 1 else 20.0
    origin = first_post(sys.argv[2]) if len(sys.argv) > 2 else None
    offset = float(os.environ.get("OFFSET", "0"))
    held, slow, written = [], [], collections.Counter()
    start = None
    for issued, took, rwbs, size, comm in requests(sys.stdin, offset):
        start = issued if start is None else min(start, issued)
        held.append(took)
        if "W" in rwbs:
            written[int(issued)] += size
        if took > threshold:
            slow.append((issued, took, rwbs, size, comm))
    if not held:
        raise SystemExit("no block requests in the trace")
    base = origin if origin is not None else start
    over = {limit: sum(took > limit for took in held) for limit in (1, 5, 20)}
    print(f"{len(held)} block requests, longest held {max(held):.1f} ms; over 1 / 5 / 20 ms: "
          f"{over[1]} / {over[5]} / {over[20]}")
    grouped = episodes(slow)
    print(f"episodes with a request held over {threshold:g} ms: {len(grouped)}")
    for episode in grouped:
        threads = ", ".join(f"{name} {count}" for name, count in episode["threads"].most_common(3))
        print(f"  at {episode['begins'] - base:8.3f} s: held up to {episode['held']:6.1f} ms, "
              f"{episode['count']} requests ({'/'.join(sorted(episode['kinds']))}), "
              f"{episode['bytes'] // 1024} KiB ({threads})")
    seconds = range(min(written), max(written) + 1) if written else []
    rates = sorted(written[second] / 1e6 for second in seconds)
    if rates:
        print(f"written per second: median {rates[len(rates) // 2]:.0f} MB, max {rates[-1]:.0f} MB")


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quietly, when piped into head
    main()
