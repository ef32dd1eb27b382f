#!/usr/bin/env python3
"""The disk's own commit latency: 64 KB writes, each followed by fdatasync, as a WAL's commits.

    benches/disk/fsync_probe.py FILE [COUNT]

Run with nothing else writing, on the file system the database lives on; FILE is created and
removed. Prints p50 / p99 / p99.9 / max of the fdatasync calls and how many took over 20 ms.
"""
import os
import sys
import time


def main():
    path = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    block = os.urandom(65536)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    took = []
    started = time.perf_counter()
    try:
        for i in range(count):
            os.write(fd, block)
            if i % 1024 == 1023:  # 64 MB, then over again, as a WAL that starts over
                os.lseek(fd, 0, os.SEEK_SET)
            before = time.perf_counter()
            os.fdatasync(fd)
            took.append((time.perf_counter() - before) * 1000)
    finally:
        os.close(fd)
        os.unlink(path)
    elapsed = time.perf_counter() - started
    took.sort()

    def at(share):
        return took[min(len(took) - 1, int(share * len(took)))]

    print(
        f"{count} syncs in {elapsed:.1f} s: p50 {at(0.5):.2f} ms, p99 {at(0.99):.2f} ms, "
        f"p99.9 {at(0.999):.2f} ms, max {took[-1]:.1f} ms; over 20 ms: {sum(t > 20 for t in took)}"
    )


main()
