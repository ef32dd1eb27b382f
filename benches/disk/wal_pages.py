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


def read_wal(wal_path):
    """The WAL's page size, and the (page number, is a commit frame) of each of its valid
    frames (those carrying the header's salt; a frame of an earlier cycle ends the list)."""
    if not os.path.exists(wal_path):
        raise SystemExit(f"{wal_path}: no WAL (the last connection to close deletes it: count "
                         "while the server or --hold still has the database open)")
    with open(wal_path, "rb") as wal:
        header = wal.read(32)
        if len(header) < 32:
            raise SystemExit(f"{wal_path}: no WAL header")
        magic, _version, page_size, _sequence, salt1, salt2 = struct.unpack(">IIIIII", header[:24])
        if magic not in (0x377F0682, 0x377F0683):
            raise SystemExit(f"{wal_path}: not a WAL file")
        frames = []
        while True:
            frame_header = wal.read(24)
            if len(frame_header) < 24:
                break
            page, commit_size, frame_salt1, frame_salt2 = struct.unpack(">IIII", frame_header[:16])
            if (frame_salt1, frame_salt2) != (salt1, salt2):
                break
            if len(wal.read(page_size)) < page_size:
                break
            frames.append((page, commit_size != 0))
    return page_size, frames


def owners(database, wal_path):
    """Maps each page number to the name of the b-tree that holds it now. On a copy: the last
    connection to close a database checkpoints its WAL and deletes it, the very frames counted."""
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
    page_size, frames = read_wal(wal_path)
    per_page = collections.Counter(page for page, _ in frames)
    commits = sum(is_commit for _, is_commit in frames)
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
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quietly, when piped into head
    main()
