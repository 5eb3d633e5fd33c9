//! The request queue shared by every worker: a Unix datagram socket pair made by the master
//! before it forks. An event loop that has read a complete heavy request sends the request and
//! the connection itself (its descriptor, with `SCM_RIGHTS`) in one datagram; a free handler
//! thread in *any* worker receives it. So no heavy request waits while a handler thread anywhere
//! is idle (what Gunicorn's sync workers get from the listen backlog, kept here for threads).
//! A retiring worker also passes its idle keep-alive connections this way, for a sibling to adopt.
//!
//! The bound is the socket's send buffer: when it is full, `try_send` fails and the request is
//! answered 503 with `Retry-After` instead of queueing without limit. Both ends are
//! non-blocking; handler threads wait for the receive end with epoll (see `handler`).

use crate::app::HeavyParams;
use crate::http::RequestHead;
use nix::cmsg_space;
use nix::errno::Errno;
use nix::sys::socket::{
    recvmsg, sendmsg, setsockopt, socketpair, sockopt, AddressFamily, ControlMessage,
    ControlMessageOwned, MsgFlags, SockFlag, SockType, UnixAddr,
};
use serde::{Deserialize, Serialize};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Largest datagram: an item's description plus the pipelined bytes read after it.
pub const MAX_ITEM_BYTES: usize = 64 * 1024;

/// Who is at the other end of a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    /// The IP address as the access log shows it (`%(h)s`); empty for a Unix socket.
    pub ip: String,
    /// The client's port (`REMOTE_PORT`); `None` for a Unix socket.
    pub port: Option<u16>,
}

/// A heavy request waiting for a handler thread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub head: RequestHead,
    pub params: HeavyParams,
    /// When the request's first byte was read (`CLOCK_MONOTONIC` ns): the start of its queue
    /// time and of its `--timeout`.
    pub received_ns: u64,
    pub peer: Peer,
    /// Requests answered on the connection before this one.
    pub served: u64,
    /// Bytes after this request that the event loop had already read (pipelining).
    #[serde(skip)]
    pub leftover: Vec<u8>,
}

/// What travels on the queue with a connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Item {
    /// Run this request, then answer on the connection.
    Heavy(Box<Job>),
    /// A connection of a retiring worker, between requests: keep serving it, starting with the
    /// bytes of its next request(s) that the retiring worker had already read.
    Adopt {
        peer: Peer,
        served: u64,
        #[serde(skip)]
        leftover: Vec<u8>,
    },
}

impl Item {
    fn leftover(&self) -> &[u8] {
        match self {
            Item::Heavy(job) => &job.leftover,
            Item::Adopt { leftover, .. } => leftover,
        }
    }
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

/// Why a receive produced nothing usable.
#[derive(Debug)]
pub enum RecvError {
    /// The datagram came but its connection could not be installed (out of descriptors): the
    /// kernel closed it. Never silent: the caller logs it.
    LostConnection,
    Other(Errno),
}

impl JobQueue {
    pub fn new() -> nix::Result<JobQueue> {
        let (send_end, recv_end) = socketpair(
            AddressFamily::Unix,
            SockType::Datagram,
            None,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        )?;
        // As large as the system allows (capped by net.core.wmem_max): a few hundred jobs.
        let _ = setsockopt(&send_end, sockopt::SndBuf, &(4 * 1024 * 1024));
        let _ = setsockopt(&recv_end, sockopt::RcvBuf, &(4 * 1024 * 1024));
        Ok(JobQueue { send_end, recv_end })
    }

    /// The receive end, for waiting on with epoll.
    pub fn recv_fd(&self) -> BorrowedFd<'_> {
        self.recv_end.as_fd()
    }

    /// Queues `item` with its connection, without blocking. The caller closes its own copy of
    /// the connection afterwards; the queue holds one until a handler receives it.
    pub fn try_send(&self, item: &Item, conn: RawFd) -> Result<(), SendError> {
        let meta = serde_json::to_vec(item).expect("items serialise");
        let len = (meta.len() as u32).to_le_bytes();
        let leftover = item.leftover();
        if 4 + meta.len() + leftover.len() > MAX_ITEM_BYTES {
            return Err(SendError::TooLarge);
        }
        let iov = [
            IoSlice::new(&len),
            IoSlice::new(&meta),
            IoSlice::new(leftover),
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

    /// Takes an item if one is waiting. `buf` is the caller's receive buffer, reused across
    /// calls (it grows to [`MAX_ITEM_BYTES`] once).
    pub fn try_recv(&self, buf: &mut Vec<u8>) -> Result<Option<(Item, OwnedFd)>, RecvError> {
        buf.resize(MAX_ITEM_BYTES, 0);
        let mut cmsg = cmsg_space!([RawFd; 1]);
        let (len, fd, truncated) = {
            let mut iov = [IoSliceMut::new(buf)];
            let msg = match recvmsg::<UnixAddr>(
                self.recv_end.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(msg) => msg,
                Err(Errno::EAGAIN) | Err(Errno::EINTR) => return Ok(None),
                Err(e) => return Err(RecvError::Other(e)),
            };
            let truncated = msg.flags.contains(MsgFlags::MSG_CTRUNC);
            let mut fd = None;
            if let Ok(cmsgs) = msg.cmsgs() {
                for c in cmsgs {
                    if let ControlMessageOwned::ScmRights(fds) = c {
                        for raw in fds {
                            // SAFETY: the kernel just installed this descriptor for us.
                            let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                            fd.get_or_insert(owned);
                        }
                    }
                }
            }
            (msg.bytes, fd, truncated)
        };
        let Some(fd) = fd else {
            return if truncated {
                Err(RecvError::LostConnection)
            } else {
                Ok(None)
            };
        };
        let data = &buf[..len];
        let Some(meta_len) = data
            .get(..4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
        else {
            return Ok(None);
        };
        let Some(Ok(mut item)) = data
            .get(4..4 + meta_len)
            .map(serde_json::from_slice::<Item>)
        else {
            return Ok(None);
        };
        let rest = data[4 + meta_len..].to_vec();
        match &mut item {
            Item::Heavy(job) => job.leftover = rest,
            Item::Adopt { leftover, .. } => *leftover = rest,
        }
        Ok(Some((item, fd)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parse_head;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    fn job() -> Item {
        let raw = b"GET /heavy/cpu-io-no-db/?io_kb=1 HTTP/1.1\r\nHost: t\r\nUser-Agent: t\r\n\r\n";
        let head = parse_head(raw, &Default::default()).unwrap().unwrap();
        Item::Heavy(Box::new(Job {
            head,
            params: HeavyParams::default(),
            received_ns: 7,
            peer: Peer {
                ip: "127.0.0.1".into(),
                port: Some(4242),
            },
            served: 3,
            leftover: b"GET /next".to_vec(),
        }))
    }

    #[test]
    fn an_item_travels_with_its_connection() {
        let queue = JobQueue::new().unwrap();
        let mut buf = Vec::new();
        for item in [
            job(),
            Item::Adopt {
                peer: Peer {
                    ip: String::new(),
                    port: None,
                },
                served: 1,
                leftover: b"GET /half".to_vec(),
            },
        ] {
            let (mut ours, theirs) = UnixStream::pair().unwrap();
            queue.try_send(&item, theirs.as_raw_fd()).unwrap();
            drop(theirs);
            let (got, fd) = queue.try_recv(&mut buf).unwrap().expect("an item");
            assert_eq!(got, item);
            let mut conn = UnixStream::from(fd);
            conn.write_all(b"ping").unwrap();
            let mut bytes = [0u8; 4];
            ours.read_exact(&mut bytes).unwrap();
            assert_eq!(&bytes, b"ping");
        }
    }

    #[test]
    fn an_empty_queue_gives_nothing_and_a_full_one_refuses() {
        let queue = JobQueue::new().unwrap();
        let mut buf = Vec::new();
        assert!(queue.try_recv(&mut buf).unwrap().is_none());
        let (a, _b) = UnixStream::pair().unwrap();
        let mut big = job();
        let Item::Heavy(job) = &mut big else {
            unreachable!()
        };
        job.leftover = vec![b'x'; 60 * 1024];
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
        let Item::Heavy(job) = &mut big else {
            unreachable!()
        };
        job.leftover = vec![b'x'; MAX_ITEM_BYTES];
        assert!(matches!(
            queue.try_send(&big, a.as_raw_fd()),
            Err(SendError::TooLarge)
        ));
    }
}
