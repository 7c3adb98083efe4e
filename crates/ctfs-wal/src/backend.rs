//! I/O backends of the writer thread: `write all bytes at offset, then make
//! them durable` as one call.
//!
//! * [`Portable`]: `pwrite` (one per contiguous slice) + `fdatasync`.
//! * `Uring` (Linux): io_uring, either a `WRITEV` SQE linked (`IO_LINK`) to an
//!   `FSYNC(DATASYNC)` SQE, or one `WRITEV` with `RWF_DSYNC`
//!   ([`UringMode`]). One `io_uring_enter` per batch either way.
//!
//! [`probe_uring`] decides at run time whether io_uring is usable (kernel
//! support, `io_uring_disabled` sysctl, seccomp filters returning
//! `ENOSYS`/`EPERM`, opcode support), by setting up a ring and running a test
//! operation.

use ctfs_core::metrics::{ENABLED, now_ns};
use std::fs::File;
use std::io;

/// Which I/O backend the writer uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Backend {
    /// What measured best for acknowledgement latency: the portable writer
    /// (see the crate docs, "Backends").
    #[default]
    Auto,
    /// io_uring or `WalError::BackendUnavailable`.
    IoUring,
    /// `pwrite` + `fdatasync`.
    Portable,
}

/// How the io_uring backend makes a batch durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum UringMode {
    /// `WRITEV` linked to `FSYNC(DATASYNC)` in one submission.
    LinkedFsync,
    /// One `WRITEV` with `RWF_DSYNC`.
    #[default]
    WriteDsync,
}

/// What the fault hook (tests only) may do to one durable write.
#[doc(hidden)]
pub enum FaultAction {
    /// Do the real I/O.
    Proceed,
    /// Fail without writing.
    FailBefore(io::Error),
    /// Do the real write + sync, then report this error (e.g. EIO from
    /// fdatasync after the data reached the page cache).
    FailAfter(io::Error),
}

/// Test-only fault injection: called before every durable write with the
/// file offset and byte count.
#[doc(hidden)]
pub type FaultHook = std::sync::Arc<dyn Fn(u64, usize) -> FaultAction + Send + Sync>;

pub(crate) trait Io: Send {
    /// Writes all of `bufs` (in order) at `offset`, then makes them durable
    /// (data + the metadata needed to read it back). One call = one
    /// fdatasync for the counters. Returns the nanoseconds of the write
    /// phase when the backend times it apart from the sync (portable; only
    /// with the `metrics` feature), `None` when write and sync are one
    /// operation (io_uring).
    fn write_durable(&mut self, file: &File, offset: u64, bufs: &[&[u8]]) -> io::Result<Option<u64>>;
    fn name(&self) -> &'static str;
}

pub(crate) struct Portable;

impl Io for Portable {
    fn write_durable(&mut self, file: &File, offset: u64, bufs: &[&[u8]]) -> io::Result<Option<u64>> {
        let t0 = if ENABLED { now_ns() } else { 0 };
        let mut off = offset;
        for b in bufs {
            write_all_at(file, b, off)?;
            off += b.len() as u64;
        }
        let written = if ENABLED { Some(now_ns() - t0) } else { None };
        file.sync_data()?;
        Ok(written)
    }
    fn name(&self) -> &'static str {
        "portable"
    }
}

#[cfg(unix)]
fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(buf, offset)
}

#[cfg(windows)]
fn write_all_at(file: &File, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        let n = file.seek_write(buf, offset)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "short write"));
        }
        buf = &buf[n..];
        offset += n as u64;
    }
    Ok(())
}

pub(crate) struct Faulty {
    pub inner: Box<dyn Io>,
    pub hook: FaultHook,
}

impl Io for Faulty {
    fn write_durable(&mut self, file: &File, offset: u64, bufs: &[&[u8]]) -> io::Result<Option<u64>> {
        let len = bufs.iter().map(|b| b.len()).sum();
        match (self.hook)(offset, len) {
            FaultAction::Proceed => self.inner.write_durable(file, offset, bufs),
            FaultAction::FailBefore(e) => Err(e),
            FaultAction::FailAfter(e) => {
                self.inner.write_durable(file, offset, bufs)?;
                Err(e)
            }
        }
    }
    fn name(&self) -> &'static str {
        self.inner.name()
    }
}

#[cfg(target_os = "linux")]
pub(crate) use uring::probe_uring;

#[cfg(not(target_os = "linux"))]
pub(crate) fn probe_uring(_mode: UringMode) -> Result<Box<dyn Io>, String> {
    Err("io_uring exists only on Linux".into())
}

/// `Ok(())` when io_uring passes the run-time probe here, or the reason why not.
pub fn io_uring_available() -> Result<(), String> {
    probe_uring(UringMode::default()).map(|_| ())
}

#[cfg(target_os = "linux")]
mod uring {
    use super::{Io, UringMode};
    use io_uring::{IoUring, Probe, opcode, squeue, types};
    use std::fs::File;
    use std::io;
    use std::os::fd::AsRawFd;

    pub(crate) struct Uring {
        ring: IoUring,
        mode: UringMode,
        iov: Vec<libc::iovec>,
    }

    // SAFETY: the iovec vector only holds raw pointers between the start and
    // the end of one `write_durable` call; it is empty otherwise.
    unsafe impl Send for Uring {}

    /// Sets up a ring, checks the opcodes we need, runs a NOP through it.
    pub(crate) fn probe_uring(mode: UringMode) -> Result<Box<dyn Io>, String> {
        if let Ok(s) = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
            && s.trim() == "2"
        {
            return Err("io_uring disabled by /proc/sys/kernel/io_uring_disabled = 2".into());
        }
        let mut ring = IoUring::new(8).map_err(|e| format!("io_uring_setup failed: {e}"))?;
        let mut probe = Probe::new();
        ring.submitter().register_probe(&mut probe).map_err(|e| format!("io_uring probe failed: {e}"))?;
        for (code, name) in [(opcode::Writev::CODE, "WRITEV"), (opcode::Fsync::CODE, "FSYNC"), (opcode::Nop::CODE, "NOP")] {
            if !probe.is_supported(code) {
                return Err(format!("io_uring opcode {name} not supported by this kernel"));
            }
        }
        let nop = opcode::Nop::new().build().user_data(0x7e57);
        // SAFETY: a NOP references no memory.
        unsafe { ring.submission().push(&nop) }.map_err(|_| "io_uring submission queue full".to_string())?;
        ring.submit_and_wait(1).map_err(|e| format!("io_uring_enter failed: {e}"))?;
        let cqe = ring.completion().next().ok_or("io_uring NOP produced no completion")?;
        if cqe.result() < 0 {
            return Err(format!("io_uring NOP failed: {}", io::Error::from_raw_os_error(-cqe.result())));
        }
        Ok(Box::new(Uring { ring, mode, iov: Vec::with_capacity(8) }))
    }

    impl Uring {
        /// Submits what is queued and collects `n` completions as (user_data, result).
        fn run(&mut self, n: usize, out: &mut [(u64, i32); 2]) -> io::Result<()> {
            let mut got = 0;
            while got < n {
                match self.ring.submit_and_wait(n - got) {
                    Ok(_) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EINTR) || e.raw_os_error() == Some(libc::EAGAIN) => {
                        continue;
                    }
                    Err(e) => return Err(e),
                }
                for cqe in self.ring.completion() {
                    if got < 2 {
                        out[got] = (cqe.user_data(), cqe.result());
                    }
                    got += 1;
                }
            }
            Ok(())
        }
    }

    impl Io for Uring {
        fn write_durable(&mut self, file: &File, offset: u64, bufs: &[&[u8]]) -> io::Result<Option<u64>> {
            let fd = types::Fd(file.as_raw_fd());
            // Remaining bytes: (buffer index, start within it).
            let mut bi = 0usize;
            let mut start = 0usize;
            let mut off = offset;
            let result = loop {
                while bi < bufs.len() && start >= bufs[bi].len() {
                    bi += 1;
                    start = 0;
                }
                let done = bi >= bufs.len();
                if done && self.mode == UringMode::WriteDsync {
                    break Ok(());
                }
                if done {
                    // Linked mode after a short write: plain datasync.
                    let fs = opcode::Fsync::new(fd).flags(types::FsyncFlags::DATASYNC).build().user_data(2);
                    // SAFETY: FSYNC references no memory.
                    unsafe { self.ring.submission().push(&fs) }
                        .map_err(|_| io::Error::other("io_uring submission queue full"))?;
                    let mut out = [(0, 0); 2];
                    self.run(1, &mut out)?;
                    if out[0].1 < 0 {
                        break Err(io::Error::from_raw_os_error(-out[0].1));
                    }
                    break Ok(());
                }
                self.iov.clear();
                let mut total = 0usize;
                for (k, b) in bufs[bi..].iter().enumerate() {
                    let s = if k == 0 { &b[start..] } else { &b[..] };
                    if s.is_empty() {
                        continue;
                    }
                    self.iov.push(libc::iovec { iov_base: s.as_ptr() as *mut libc::c_void, iov_len: s.len() });
                    total += s.len();
                }
                let mut w = opcode::Writev::new(fd, self.iov.as_ptr(), self.iov.len() as u32).offset(off);
                let linked = self.mode == UringMode::LinkedFsync;
                if !linked {
                    w = w.rw_flags(libc::RWF_DSYNC);
                }
                let mut sqe = w.build().user_data(1);
                if linked {
                    sqe = sqe.flags(squeue::Flags::IO_LINK);
                }
                let fs = opcode::Fsync::new(fd).flags(types::FsyncFlags::DATASYNC).build().user_data(2);
                // SAFETY: the iovecs and the buffers they point at outlive the
                // submission: we wait for every completion below before
                // returning or touching `self.iov` again.
                unsafe {
                    let mut sq = self.ring.submission();
                    sq.push(&sqe).map_err(|_| io::Error::other("io_uring submission queue full"))?;
                    if linked {
                        sq.push(&fs).map_err(|_| io::Error::other("io_uring submission queue full"))?;
                    }
                }
                let want = if linked { 2 } else { 1 };
                let mut out = [(0u64, 0i32); 2];
                if let Err(e) = self.run(want, &mut out) {
                    // Cannot know whether the kernel still uses our buffers:
                    // this is fatal for the WAL (failed state) anyway.
                    self.iov.clear();
                    return Err(e);
                }
                let (mut wres, mut fres) = (0i32, 0i32);
                for (ud, res) in &out[..want] {
                    if *ud == 1 {
                        wres = *res;
                    } else {
                        fres = *res;
                    }
                }
                if wres < 0 {
                    break Err(io::Error::from_raw_os_error(-wres));
                }
                let written = wres as usize;
                if written == 0 {
                    break Err(io::Error::new(io::ErrorKind::WriteZero, "io_uring write wrote 0 bytes"));
                }
                if written == total {
                    if linked && fres < 0 {
                        break Err(io::Error::from_raw_os_error(-fres));
                    }
                    break Ok(());
                }
                // Short write: advance and go on (the linked fsync, if any,
                // was cancelled or synced a prefix; a final one follows).
                off += written as u64;
                let mut left = written;
                while left > 0 && bi < bufs.len() {
                    let avail = bufs[bi].len() - start;
                    if left >= avail {
                        left -= avail;
                        bi += 1;
                        start = 0;
                    } else {
                        start += left;
                        left = 0;
                    }
                }
                if bi >= bufs.len() && self.mode == UringMode::WriteDsync {
                    break Ok(());
                }
            };
            self.iov.clear();
            result.map(|()| None)
        }

        fn name(&self) -> &'static str {
            "io_uring"
        }
    }
}
