#!/usr/bin/env python3
"""Episodes of slow requests in a maestro server's JSON log, and what else it logged meanwhile.

    benches/wrk/slow_requests.py server.log [THRESHOLD_MS] [METHOD]
    benches/wrk/slow_requests.py --gaps server.log

Requests of METHOD (default POST) slower than THRESHOLD_MS (default 25) are grouped into
episodes (overlapping in time); for each, the non-request lines logged from 150 ms before it to
20 ms after it are printed (the checkpointer's passes with
RUST_LOG=info,maestro::store::sqlite::checkpointer=debug). Times are seconds from the first
request of METHOD.

With --gaps it lists instead the checkpointer's passes that came more than half a second after
the one before (the one-second pace) while the WAL changed in between, with the frames each
saw: under sustained writes, the pace falling back after a WAL restart (docs/PERFORMANCE.md,
2026-12-05). Idle seconds, where the WAL stays as it was, are left out.
"""
import bisect
import datetime
import json
import signal
import sys


def seconds(stamp):
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def read_log(path, method):
    """The log's requests of `method` as (finished at, latency in ms), and its other lines as
    (logged at, entry), each in the order of time."""
    requests, others = [], []
    with open(path, encoding="utf-8") as log:
        for line in log:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            at = seconds(entry["timestamp"])
            if entry.get("message") == "request finished":
                if entry.get("span", {}).get("method") == method:
                    requests.append((at, entry["latency_ms"]))
            else:
                others.append((at, entry))
    requests.sort()
    others.sort(key=lambda other: other[0])
    return requests, others


def print_gaps(path, longer_than=0.5):
    _, others = read_log(path, "POST")
    passes = [(at, entry["wal_frames"]) for at, entry in others
              if entry.get("message") == "WAL checkpoint"]
    if not passes:
        sys.exit(f"no checkpoint pass in {path} (RUST_LOG=info,maestro::store::sqlite::checkpointer=debug)")
    first = passes[0][0]
    gaps = 0
    for (before, frames_before), (at, frames) in zip(passes, passes[1:]):
        if at - before > longer_than and frames != frames_before:
            gaps += 1
            print(f"{at - first:8.3f} s: {at - before:.2f} s after the pass before, "
                  f"WAL frames {frames_before} -> {frames}")
    print(f"{len(passes)} passes, {gaps} more than {longer_than:g} s after the one before "
          "with the WAL changed")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--gaps":
        print_gaps(sys.argv[2])
        return
    path = sys.argv[1]
    threshold = float(sys.argv[2]) if len(sys.argv) > 2 else 25.0
    method = sys.argv[3] if len(sys.argv) > 3 else "POST"
    requests, others = read_log(path, method)
    if not requests:
        sys.exit(f"no {method} request in {path}")
    print(f"{len(requests)} {method} requests, max {max(ms for _, ms in requests):.1f} ms")
    episodes = []
    for at, ms in requests:
        if ms <= threshold:
            continue
        began = at - ms / 1000
        if episodes and began < episodes[-1][1]:
            episode = episodes[-1]
            episode[1], episode[2], episode[3] = max(episode[1], at), max(episode[2], ms), episode[3] + 1
        else:
            episodes.append([began, at, ms, 1])
    first = requests[0][0]
    other_times = [at for at, _ in others]
    for began, ended, worst, count in episodes:
        print(f"{began - first:8.3f} .. {ended - first:8.3f} s: {count} over {threshold:g} ms, worst {worst:.1f} ms")
        start = bisect.bisect_left(other_times, began - 0.15)
        end = bisect.bisect_right(other_times, ended + 0.02)
        for at, entry in others[start:end]:
            fields = {k: v for k, v in entry.items() if k not in ("timestamp", "target", "level")}
            print(f"    {at - first:8.3f} {fields}")


if __name__ == "__main__":  # benches/disk/block_stalls.py imports read_log
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quietly, when piped into head
    main()
