//! Where the log writer thread puts the lines: stderr and, when stderr is a regular file, that
//! file's pages written out a tenth of a second's worth at a time.
//!
//! A server logging a line per request into a file on the database's disk dirties megabytes a
//! second; left to the kernel, they go out in one burst every few seconds (pages 30 s old, every
//! 5 s by default), and the commits' fsyncs queue behind each burst: under wrk, the ingest max
//! went from 30–49 ms with the kernel writing back every 0.5 s to 64–120 ms with its defaults
//! (docs/PERFORMANCE.md). The same remedy as the database file's checkpoint flushes: this thread
//! syncs the file every [`FLUSH_INTERVAL`] while lines come, so each write-out is small. Only
//! this thread waits for it (its queue holds the lines meanwhile); a pipe or a socket (journald,
//! a container runtime) is left alone.

use std::{
    fs::File,
    io::{self, Stderr, Write},
    os::fd::AsFd,
    time::{Duration, Instant},
};

/// How often the log file's new pages are written out while lines are written.
const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

pub struct LogSink<W = Stderr> {
    out: W,
    /// `out`, when it is a regular file.
    file: Option<File>,
    /// Lines written since the last write-out began.
    unflushed: bool,
    last_flush: Instant,
}

impl LogSink {
    pub fn stderr() -> LogSink {
        LogSink::over(io::stderr())
    }
}

impl<W: Write + AsFd> LogSink<W> {
    fn over(out: W) -> LogSink<W> {
        let file = out
            .as_fd()
            .try_clone_to_owned()
            .ok()
            .map(File::from)
            .filter(|file| file.metadata().is_ok_and(|meta| meta.file_type().is_file()));
        LogSink {
            out,
            file,
            unflushed: false,
            last_flush: Instant::now(),
        }
    }

    fn write_out_if_due(&mut self) {
        let Some(file) = &self.file else { return };
        if self.unflushed && self.last_flush.elapsed() >= FLUSH_INTERVAL {
            self.last_flush = Instant::now();
            self.unflushed = false;
            // A failure costs only the smoothing: the kernel writes the pages out as before.
            let _ = file.sync_data();
        }
    }
}

impl<W: Write + AsFd> Write for LogSink<W> {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let written = self.out.write(line)?;
        self.unflushed |= written > 0;
        self.write_out_if_due();
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn a_regular_file_is_written_out_as_lines_come_and_every_line_lands() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("maestro.log");
        let mut sink = LogSink::over(File::create(&path).unwrap());
        assert!(sink.file.is_some(), "a regular file is synced");
        // Not due for an hour, however slowly the test runs.
        sink.last_flush = Instant::now() + Duration::from_secs(3600);
        sink.write_all(b"{\"message\":\"one\"}\n").unwrap();
        assert!(sink.unflushed, "not yet due");
        sink.last_flush = Instant::now() - FLUSH_INTERVAL;
        sink.write_all(b"{\"message\":\"two\"}\n").unwrap();
        assert!(!sink.unflushed, "written out once the interval has passed");
        sink.flush().unwrap();
        let written = std::fs::read_to_string(&path).unwrap();
        assert_eq!(written, "{\"message\":\"one\"}\n{\"message\":\"two\"}\n");
    }

    #[test]
    fn a_pipe_is_only_written_to() {
        let (mut reader, writer) = io::pipe().unwrap();
        let mut sink = LogSink::over(writer);
        assert!(sink.file.is_none(), "nothing to write out on a pipe");
        sink.last_flush -= FLUSH_INTERVAL;
        sink.write_all(b"line\n").unwrap();
        drop(sink);
        let mut read = String::new();
        reader.read_to_string(&mut read).unwrap();
        assert_eq!(read, "line\n");
    }
}
