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
//!
//! One datagram is one frame: a version byte, a kind byte, the item's length and the length of
//! the bytes that travel with it, the item in postcard (a compact serde format with a
//! documented wire layout), then those bytes. Every length is checked against what arrived, so
//! a frame cut short or with bytes added anywhere is a [`FrameError`], never a shorter item.
//! A frame that does not decode is returned with its connection so the caller can count it,
//! log it and answer the client — never dropped silently.

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
/// The frame layout's version: a worker of another build (during a binary upgrade both run)
/// that sends another layout is refused by name, not misread. 2: the leftover's length joined
/// the header.
pub const FRAME_VERSION: u8 = 2;
/// Version byte, kind byte ([`KIND_HEAVY`] or [`KIND_ADOPT`]: readable even when the rest is
/// not, so the queue-depth gauge stays exact), the item's length and the leftover's length
/// (u32 each, little-endian).
const FRAME_HEADER: usize = 10;
const KIND_HEAVY: u8 = 1;
const KIND_ADOPT: u8 = 2;

/// Whether a (possibly undecodable) frame says it carries a heavy request.
pub fn frame_is_heavy(data: &[u8]) -> bool {
    data.get(1) == Some(&KIND_HEAVY)
}

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

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the shared queue is full")]
    Full,
    #[error("the item is larger than a queue datagram ({MAX_ITEM_BYTES} bytes)")]
    TooLarge,
    #[error("sending on the shared queue failed: {0}")]
    Other(Errno),
}

/// Why a datagram is not a frame this build can read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame of {0} bytes is shorter than its header")]
    Truncated(usize),
    #[error("frame version {found}, this worker reads version {FRAME_VERSION}")]
    Version { found: u8 },
    #[error("frame kind {0} is neither a heavy request nor an adopted connection")]
    Kind(u8),
    #[error("frame declares {declared} bytes after its header, {available} arrived")]
    Length { declared: usize, available: usize },
    #[error("datagram longer than the {MAX_ITEM_BYTES} bytes a frame may have: cut short")]
    Cut,
    #[error("frame item does not decode: {0}")]
    Item(String),
}

/// Why a receive produced nothing usable.
#[derive(Debug, thiserror::Error)]
pub enum RecvError {
    /// The datagram came but its connection could not be installed (out of descriptors): the
    /// kernel closed it. Never silent: the caller logs it.
    #[error("a connection passed on the shared queue was lost: out of file descriptors")]
    LostConnection,
    /// The datagram is not a frame this build reads; its connection, if it carried one, is here
    /// to be answered.
    #[error("undecodable frame on the shared queue: {error}")]
    Undecodable {
        error: FrameError,
        conn: Option<OwnedFd>,
        /// The frame's kind byte said it carried a heavy request (counted in the queue depth).
        heavy: bool,
    },
    #[error("shared queue receive failed: {0}")]
    Other(Errno),
}

/// Encodes `item` as one frame (header and item; the caller sends the item's bytes after it).
pub fn encode_frame(item: &Item, version: u8) -> Vec<u8> {
    let body = postcard::to_stdvec(item).expect("items serialise");
    let mut frame = Vec::with_capacity(FRAME_HEADER + body.len());
    frame.push(version);
    frame.push(match item {
        Item::Heavy(_) => KIND_HEAVY,
        Item::Adopt { .. } => KIND_ADOPT,
    });
    // Both lengths fit: `try_send` refuses frames over MAX_ITEM_BYTES.
    frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
    frame.extend_from_slice(&(item.leftover().len() as u32).to_le_bytes());
    frame.extend_from_slice(&body);
    frame
}

/// Decodes one frame: the item, with the bytes that followed it as its leftover.
pub fn decode_frame(data: &[u8]) -> Result<Item, FrameError> {
    if data.len() < FRAME_HEADER {
        return Err(FrameError::Truncated(data.len()));
    }
    if data[0] != FRAME_VERSION {
        return Err(FrameError::Version { found: data[0] });
    }
    let kind = data[1];
    if kind != KIND_HEAVY && kind != KIND_ADOPT {
        return Err(FrameError::Kind(kind));
    }
    let u32_at =
        |at: usize| u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
    let item_len = u32_at(2) as usize;
    let leftover_len = u32_at(6) as usize;
    let rest = &data[FRAME_HEADER..];
    if item_len + leftover_len != rest.len() {
        return Err(FrameError::Length {
            declared: item_len + leftover_len,
            available: rest.len(),
        });
    }
    let (body, leftover) = rest.split_at(item_len);
    let (mut item, unread) =
        postcard::take_from_bytes::<Item>(body).map_err(|e| FrameError::Item(e.to_string()))?;
    if !unread.is_empty() {
        return Err(FrameError::Item(format!(
            "{} byte(s) after the item",
            unread.len()
        )));
    }
    let leftover = leftover.to_vec();
    match &mut item {
        Item::Heavy(job) if kind == KIND_HEAVY => job.leftover = leftover,
        Item::Adopt { leftover: l, .. } if kind == KIND_ADOPT => *l = leftover,
        // The kind byte keeps the queue gauge: it must say what the item is.
        _ => return Err(FrameError::Kind(kind)),
    }
    Ok(item)
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

    /// Whether the kernel holds no datagram sent and not yet received (`SIOCOUTQ` on the send
    /// end, which every process shares: the memory of its datagrams in flight). `None` if it
    /// cannot say.
    pub fn is_empty(&self) -> Option<bool> {
        let mut queued: libc::c_int = 0;
        // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int through the pointer.
        let rc = unsafe { libc::ioctl(self.send_end.as_raw_fd(), libc::TIOCOUTQ, &mut queued) };
        (rc == 0).then_some(queued == 0)
    }

    /// Queues `item` with its connection, without blocking. The caller closes its own copy of
    /// the connection afterwards; the queue holds one until a handler receives it.
    pub fn try_send(&self, item: &Item, conn: RawFd) -> Result<(), SendError> {
        let corrupt = matches!(item, Item::Heavy(job) if job.params.corrupt_frame);
        // Fault injection (`fault=frame`): a version no worker reads.
        let version = if corrupt { 0 } else { FRAME_VERSION };
        let frame = encode_frame(item, version);
        let leftover = item.leftover();
        if frame.len() + leftover.len() > MAX_ITEM_BYTES {
            return Err(SendError::TooLarge);
        }
        let iov = [IoSlice::new(&frame), IoSlice::new(leftover)];
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
        let (len, fd, truncated, cut) = {
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
            // The datagram did not fit the buffer: what arrived is not the whole frame.
            let cut = msg.flags.contains(MsgFlags::MSG_TRUNC);
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
            (msg.bytes, fd, truncated, cut)
        };
        let decoded = if cut {
            Err(FrameError::Cut)
        } else {
            decode_frame(&buf[..len])
        };
        let heavy = frame_is_heavy(&buf[..len]);
        match (decoded, fd) {
            (Ok(item), Some(fd)) => Ok(Some((item, fd))),
            (Err(error), conn) => Err(RecvError::Undecodable { error, conn, heavy }),
            (Ok(_), None) if truncated => Err(RecvError::LostConnection),
            (Ok(_), None) => Err(RecvError::Undecodable {
                error: FrameError::Item("a frame without its connection".into()),
                conn: None,
                heavy,
            }),
        }
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

    #[test]
    fn frames_round_trip_and_every_malformed_one_is_a_typed_error() {
        let item = job();
        let mut frame = encode_frame(&item, FRAME_VERSION);
        frame.extend_from_slice(item.leftover());
        assert_eq!(decode_frame(&frame).unwrap(), item);
        assert!(frame_is_heavy(&frame));
        assert_eq!(decode_frame(&frame[..3]), Err(FrameError::Truncated(3)));
        let mut old = frame.clone();
        old[0] = 9;
        assert_eq!(decode_frame(&old), Err(FrameError::Version { found: 9 }));
        let mut long = frame.clone();
        long[2..6].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode_frame(&long),
            Err(FrameError::Length { .. })
        ));
        // Every truncation and every single-byte corruption decodes or fails, never panics.
        for cut in 0..frame.len() {
            let _ = decode_frame(&frame[..cut]);
        }
        for at in 0..frame.len() {
            let mut bad = frame.clone();
            bad[at] ^= 0xff;
            let _ = decode_frame(&bad);
        }
        let mut garbage = vec![FRAME_VERSION, KIND_HEAVY, 4, 0, 0, 0, 0, 0, 0, 0];
        garbage.extend_from_slice(&[0xff; 4]);
        assert!(matches!(decode_frame(&garbage), Err(FrameError::Item(_))));
        // The kind byte must be known, and say what the item is (the queue gauge reads it).
        let mut unknown = frame.clone();
        unknown[1] = 7;
        assert_eq!(decode_frame(&unknown), Err(FrameError::Kind(7)));
        let mut lying = frame.clone();
        lying[1] = KIND_ADOPT;
        assert_eq!(decode_frame(&lying), Err(FrameError::Kind(KIND_ADOPT)));
    }

    #[test]
    fn an_undecodable_datagram_comes_back_with_its_connection() {
        let queue = JobQueue::new().unwrap();
        let mut item = job();
        let Item::Heavy(j) = &mut item else {
            unreachable!()
        };
        j.params.corrupt_frame = true;
        let (_ours, theirs) = UnixStream::pair().unwrap();
        queue.try_send(&item, theirs.as_raw_fd()).unwrap();
        let mut buf = Vec::new();
        match queue.try_recv(&mut buf) {
            Err(RecvError::Undecodable { error, conn, heavy }) => {
                assert_eq!(error, FrameError::Version { found: 0 });
                assert!(conn.is_some(), "the connection comes back to be answered");
                assert!(heavy);
            }
            other => panic!("expected an undecodable frame, got {other:?}"),
        }
    }

    /// A frame cut short anywhere, or with a byte added, is refused: no prefix of a frame is
    /// itself a frame (the leftover's length is in the header), and nothing may follow it.
    #[test]
    fn every_cut_or_padded_frame_is_a_typed_error() {
        let adopt = Item::Adopt {
            peer: Peer {
                ip: "10.0.0.1".into(),
                port: Some(1),
            },
            served: 2,
            leftover: b"GET /half".to_vec(),
        };
        for item in [job(), adopt] {
            let mut frame = encode_frame(&item, FRAME_VERSION);
            frame.extend_from_slice(item.leftover());
            assert_eq!(decode_frame(&frame).as_ref(), Ok(&item));
            for cut in 0..frame.len() {
                let err = decode_frame(&frame[..cut]).expect_err("a cut frame decodes");
                assert!(!err.to_string().is_empty());
            }
            let mut padded = frame.clone();
            padded.push(b'x');
            assert!(decode_frame(&padded).is_err(), "a padded frame decodes");
        }
    }

    /// A datagram longer than any frame (no worker sends one) is refused as cut, not decoded
    /// from its first 64 KiB.
    #[test]
    fn a_datagram_longer_than_a_frame_is_refused_as_cut() {
        let queue = JobQueue::new().unwrap();
        let mut item = job();
        let Item::Heavy(j) = &mut item else {
            unreachable!()
        };
        j.leftover.clear();
        let mut long = encode_frame(&item, FRAME_VERSION);
        long.resize(MAX_ITEM_BYTES + 1, b'x');
        let (_ours, theirs) = UnixStream::pair().unwrap();
        let fds = [theirs.as_raw_fd()];
        sendmsg::<UnixAddr>(
            queue.send_end.as_raw_fd(),
            &[IoSlice::new(&long)],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .unwrap();
        match queue.try_recv(&mut Vec::new()) {
            Err(RecvError::Undecodable { error, conn, heavy }) => {
                assert_eq!(error, FrameError::Cut);
                assert!(conn.is_some() && heavy);
            }
            other => panic!("expected a cut frame, got {other:?}"),
        }
    }

    /// The kernel's view of the queue, which the depth gauge falls back on when it is empty.
    #[test]
    fn the_kernel_says_when_the_queue_is_empty() {
        let queue = JobQueue::new().unwrap();
        assert_eq!(queue.is_empty(), Some(true));
        let (_ours, theirs) = UnixStream::pair().unwrap();
        queue.try_send(&job(), theirs.as_raw_fd()).unwrap();
        assert_eq!(queue.is_empty(), Some(false), "a datagram in flight");
        let mut buf = Vec::new();
        queue.try_recv(&mut buf).unwrap().expect("the item");
        assert_eq!(queue.is_empty(), Some(true), "taken off");
    }
}
