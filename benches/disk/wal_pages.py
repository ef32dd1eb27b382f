#!/usr/bin/env python3
"""What a SQLite WAL holds, b-tree by b-tree: the frames (pages) each table and index wrote.

    benches/disk/wal_pages.py DATABASE [ALERTS]
    benches/disk/wal_pages.py --hold DATABASE      # until interrupted

Reads DATABASE-wal's frames (those of its current salt, committed or not), names each frame's
page by the b-tree it belongs to now (SQLite's dbstat, on a copy of the database and its WAL),
and prints per b-tree the frames written, their share, and with ALERTS (the alerts created
while the WAL grew) the bytes per alert. The WAL must have grown from empty while the load ran:
keep it from being restarted with `--hold DATABASE`, started before the load: it holds a read
transaction open until interrupted, and no checkpoint copies past a reader, nor restarts the WAL
under one, so every frame the load writes stays in it.
"""
import collections
import os
import shutil
import signal
import sqlite3
import struct
import sys
import tempfile


def frames(wal_path):
    """Yields (page number, is a commit frame) for each valid frame of the WAL."""
    with open(wal_path, "rb") as wal:
        header = wal.read(32)
        if len(header) < 32:
            return
        magic, _version, page_size, _sequence, salt1, salt2 = struct.unpack(">IIIIII", header[:24])
        if magic not in (0x377F0682, 0x377F0683):
            raise SystemExit(f"{wal_path}: not a WAL file")
        while True:
            frame_header = wal.read(24)
            if len(frame_header) < 24:
                return
            page, commit_size, frame_salt1, frame_salt2 = struct.unpack(">IIII", frame_header[:16])
            if (frame_salt1, frame_salt2) != (salt1, salt2):
                return
            if len(wal.read(page_size)) < page_size:
                return
            yield page, commit_size != 0, page_size


def owners(database, wal_path):
    """Maps each page number to the name of the b-tree that holds it now."""
    with tempfile.TemporaryDirectory() as scratch:
        copy = os.path.join(scratch, "copy.db")
        shutil.copyfile(database, copy)
        shutil.copyfile(wal_path, copy + "-wal")
        connection = sqlite3.connect(copy)
        pages = dict(connection.execute("SELECT pageno, name FROM dbstat"))
        connection.close()
    return pages


def hold(database):
    """Holds a read transaction on DATABASE until interrupted."""
    connection = sqlite3.connect(database, isolation_level=None)
    connection.execute("BEGIN")
    connection.execute("SELECT count(*) FROM sqlite_master").fetchall()
    print(f"holding a read transaction on {database}; interrupt to end it", flush=True)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    connection.execute("COMMIT")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--hold":
        hold(sys.argv[2])
        return
    if len(sys.argv) not in (2, 3):
        raise SystemExit(__doc__)
    database = sys.argv[1]
    alerts = int(sys.argv[2]) if len(sys.argv) == 3 else None
    wal_path = database + "-wal"
    per_page = collections.Counter()
    commits = 0
    page_size = 4096
    for page, is_commit, page_size in frames(wal_path):
        per_page[page] += 1
        commits += is_commit
    total = sum(per_page.values())
    if total == 0:
        raise SystemExit(f"{wal_path}: no frames")
    names = owners(database, wal_path)
    per_tree = collections.Counter()
    distinct = collections.Counter()
    for page, count in per_page.items():
        name = names.get(page, "(free or gone)")
        per_tree[name] += count
        distinct[name] += 1
    print(f"{total} frames of {page_size} bytes ({total * page_size / 1e6:.1f} MB), "
          f"{commits} commits, {total / max(commits, 1):.1f} frames per commit, "
          f"{len(per_page)} distinct pages")
    if alerts:
        print(f"{alerts} alerts: {total * page_size / alerts / 1024:.1f} KiB of WAL per alert, "
              f"{len(per_page) * page_size / alerts / 1024:.2f} KiB of distinct pages per alert")
    print(f"{'b-tree':<40} {'frames':>9} {'share':>6} {'pages':>8}"
          + (f" {'KiB/alert':>9}" if alerts else ""))
    for name, count in per_tree.most_common():
        line = f"{name:<40} {count:>9} {count / total:>6.1%} {distinct[name]:>8}"
        if alerts:
            line += f" {count * page_size / alerts / 1024:>9.2f}"
        print(line)


if __name__ == "__main__":
    main()
