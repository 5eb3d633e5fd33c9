//! The request queue shared by every worker: a Unix datagram socket pair made by the master
//! before it forks. An event loop that has read a complete heavy request sends the request's
//! description and the connection itself (its descriptor, with `SCM_RIGHTS`) in one datagram; a
//! free handler thread in *any* worker receives it. Idle threads wait in `recvmsg`, and the
//! kernel wakes exactly one of them per datagram, oldest waiter first — so no heavy request waits
//! while a handler thread anywhere is idle (what Gunicorn's sync workers get from the listen
//! backlog, kept here for threads).
//!
//! The bound is the socket's send buffer: when it is full, `try_send` fails and the request is
//! answered 503 with `Retry-After` instead of queueing without limit.

use nix::cmsg_space;
use nix::errno::Errno;
use nix::sys::socket::{
    recvmsg, sendmsg, setsockopt, socketpair, sockopt, AddressFamily, ControlMessage,
    ControlMessageOwned, MsgFlags, SockFlag, SockType, UnixAddr,
};
use nix::sys::time::TimeVal;
use serde::{Deserialize, Serialize};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Largest datagram: a job's description plus the pipelined bytes read after it.
pub const MAX_JOB_BYTES: usize = 64 * 1024;

/// A heavy request waiting for a handler thread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub method: String,
    pub target: String,
    pub path: String,
    pub query: String,
    pub http10: bool,
    pub keep_alive: bool,
    pub prime_limit: i64,
    pub hash_rounds: i64,
    pub io_kb: i64,
    /// Fault injection: panic in the handler.
    pub panic: bool,
    /// When the request's first byte was read (`CLOCK_MONOTONIC` ns): the start of its queue
    /// time and of its `--timeout`.
    pub received_ns: u64,
    pub peer: String,
    /// Request headers the access log needs (empty when there is no access log).
    pub log_headers: Vec<(String, String)>,
    /// Bytes after this request that the event loop had already read (pipelining).
    #[serde(skip)]
    pub leftover: Vec<u8>,
}

/// Both ends of the shared queue. Every process holds both; all send on one, receive on the other.
pub struct JobQueue {
    send_end: OwnedFd,
    recv_end: OwnedFd,
}

#[derive(Debug)]
pub enum SendError {
    /// The queue is at its bound.
    Full,
    TooLarge,
    Other(Errno),
}

impl JobQueue {
    /// `poll_interval` bounds how long a receiver sleeps before it looks at its own state again.
    pub fn new(poll_interval: Duration) -> nix::Result<JobQueue> {
        let (send_end, recv_end) = socketpair(
            AddressFamily::Unix,
            SockType::Datagram,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        // As large as the system allows (capped by net.core.wmem_max): a few hundred jobs.
        let _ = setsockopt(&send_end, sockopt::SndBuf, &(4 * 1024 * 1024));
        let _ = setsockopt(&recv_end, sockopt::RcvBuf, &(4 * 1024 * 1024));
        let tv = TimeVal::new(
            poll_interval.as_secs() as _,
            poll_interval.subsec_micros() as _,
        );
        setsockopt(&recv_end, sockopt::ReceiveTimeout, &tv)?;
        Ok(JobQueue { send_end, recv_end })
    }

    /// Queues `job` with its connection, without blocking. The caller closes its own copy of the
    /// connection afterwards; the queue holds one until a handler receives it.
    pub fn try_send(&self, job: &Job, conn: RawFd) -> Result<(), SendError> {
        let meta = serde_json::to_vec(job).expect("jobs serialise");
        let len = (meta.len() as u32).to_le_bytes();
        if 4 + meta.len() + job.leftover.len() > MAX_JOB_BYTES {
            return Err(SendError::TooLarge);
        }
        let iov = [
            IoSlice::new(&len),
            IoSlice::new(&meta),
            IoSlice::new(&job.leftover),
        ];
        let fds = [conn];
        let cmsg = [ControlMessage::ScmRights(&fds)];
        match sendmsg::<UnixAddr>(
            self.send_end.as_raw_fd(),
            &iov,
            &cmsg,
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Ok(_) => Ok(()),
            // ETOOMANYREFS: the per-user limit on descriptors in flight (RLIMIT_NOFILE) is hit;
            // as far as the client is concerned the queue is full.
            Err(Errno::EAGAIN) | Err(Errno::ENOBUFS) | Err(Errno::ETOOMANYREFS) => {
                Err(SendError::Full)
            }
            Err(Errno::EMSGSIZE) => Err(SendError::TooLarge),
            Err(e) => Err(SendError::Other(e)),
        }
    }

    /// Waits up to the poll interval for a job. `Ok(None)`: nothing came.
    pub fn recv(&self) -> nix::Result<Option<(Job, OwnedFd)>> {
        self.recv_with(MsgFlags::empty())
    }

    /// Takes a job only if one is already waiting.
    pub fn try_recv(&self) -> nix::Result<Option<(Job, OwnedFd)>> {
        self.recv_with(MsgFlags::MSG_DONTWAIT)
    }

    fn recv_with(&self, flags: MsgFlags) -> nix::Result<Option<(Job, OwnedFd)>> {
        let mut buf = vec![0u8; MAX_JOB_BYTES];
        let mut cmsg = cmsg_space!([RawFd; 1]);
        let (len, fd) = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let msg = match recvmsg::<UnixAddr>(
                self.recv_end.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                flags | MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(msg) => msg,
                Err(Errno::EAGAIN) | Err(Errno::EINTR) => return Ok(None),
                Err(e) => return Err(e),
            };
            let mut fd = None;
            for c in msg.cmsgs()? {
                if let ControlMessageOwned::ScmRights(fds) = c {
                    for raw in fds {
                        // SAFETY: the kernel just installed this descriptor for us; we own it.
                        let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                        fd.get_or_insert(owned);
                    }
                }
            }
            (msg.bytes, fd)
        };
        let Some(fd) = fd else { return Ok(None) };
        let data = &buf[..len];
        if data.len() < 4 {
            return Ok(None);
        }
        let meta_len = u32::from_le_bytes(data[..4].try_into().expect("4 bytes")) as usize;
        let Some(meta) = data.get(4..4 + meta_len) else {
            return Ok(None);
        };
        let Ok(mut job) = serde_json::from_slice::<Job>(meta) else {
            return Ok(None);
        };
        job.leftover = data[4 + meta_len..].to_vec();
        Ok(Some((job, fd)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    fn job() -> Job {
        Job {
            method: "GET".into(),
            target: "/heavy/cpu-io-no-db/?io_kb=1".into(),
            path: "/heavy/cpu-io-no-db/".into(),
            query: "io_kb=1".into(),
            http10: false,
            keep_alive: true,
            prime_limit: 10,
            hash_rounds: 1,
            io_kb: 1,
            panic: false,
            received_ns: 7,
            peer: "127.0.0.1".into(),
            log_headers: vec![("User-Agent".into(), "t".into())],
            leftover: b"GET /next".to_vec(),
        }
    }

    #[test]
    fn a_job_travels_with_its_connection() {
        let queue = JobQueue::new(Duration::from_millis(50)).unwrap();
        let (mut ours, theirs) = UnixStream::pair().unwrap();
        queue.try_send(&job(), theirs.as_raw_fd()).unwrap();
        drop(theirs);
        let (got, fd) = queue.recv().unwrap().expect("a job");
        assert_eq!(got, job());
        let mut conn = UnixStream::from(fd);
        conn.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        ours.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
    }

    #[test]
    fn an_empty_queue_times_out_and_a_full_one_refuses() {
        let queue = JobQueue::new(Duration::from_millis(20)).unwrap();
        assert!(queue.recv().unwrap().is_none());
        assert!(queue.try_recv().unwrap().is_none());
        let (a, _b) = UnixStream::pair().unwrap();
        let mut big = job();
        big.leftover = vec![b'x'; 60 * 1024];
        let mut sent = 0;
        let full = loop {
            match queue.try_send(&big, a.as_raw_fd()) {
                Ok(()) => sent += 1,
                Err(e) => break e,
            }
            assert!(sent < 10_000, "the queue must be bounded");
        };
        assert!(matches!(full, SendError::Full), "{full:?}");
        assert!(sent > 0);
        big.leftover = vec![b'x'; MAX_JOB_BYTES];
        assert!(matches!(
            queue.try_send(&big, a.as_raw_fd()),
            Err(SendError::TooLarge)
        ));
    }
}
