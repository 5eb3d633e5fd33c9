//! The event loop's connections, indexed two ways besides their token: by deadline (the next to
//! expire first) and by how long they have produced no request (the least productive first,
//! for eviction at the connection limit). Both indexes and the per-state counts are updated in one place, [`Conns::settle`],
//! after every piece of work on a connection, so the loop never scans every connection.
//!
//! An index entry may be early, never late: a settle re-indexes a connection only when its
//! deadline moved earlier (or its silence began), and an entry that comes first is checked
//! against its connection before anything is done to it. So a keep-alive connection serving
//! request after request is re-indexed about once per keep-alive period, not per request.

use super::connection::{Conn, State};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

pub(super) struct Conns {
    map: foldhash::HashMap<u64, Entry>,
    deadlines: BTreeSet<(Instant, u64)>,
    silent: BTreeSet<(Instant, u64)>,
    /// Connections per [`State`].
    counts: [usize; State::ALL.len()],
    keep_alive: Duration,
}

struct Entry {
    conn: Conn,
    /// What the connection is indexed under now (`None`: out of the deadline index, expired).
    deadline: Option<Instant>,
    silent: Option<Instant>,
    state: State,
}

impl Conns {
    pub(super) fn new(keep_alive: Duration) -> Conns {
        Conns {
            map: foldhash::HashMap::default(),
            deadlines: BTreeSet::new(),
            silent: BTreeSet::new(),
            counts: [0; State::ALL.len()],
            keep_alive,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub(super) fn insert(&mut self, token: u64, conn: Conn) {
        let state = conn.state();
        let deadline = conn.deadline(self.keep_alive);
        let silent = conn.unproductive_since();
        self.deadlines.insert((deadline, token));
        if let Some(at) = silent {
            self.silent.insert((at, token));
        }
        self.counts[state.index()] += 1;
        self.map.insert(
            token,
            Entry {
                conn,
                deadline: Some(deadline),
                silent,
                state,
            },
        );
    }

    pub(super) fn remove(&mut self, token: u64) -> Option<Conn> {
        let entry = self.map.remove(&token)?;
        if let Some(at) = entry.deadline {
            self.deadlines.remove(&(at, token));
        }
        if let Some(at) = entry.silent {
            self.silent.remove(&(at, token));
        }
        self.counts[entry.state.index()] -= 1;
        Some(entry.conn)
    }

    pub(super) fn get(&self, token: u64) -> Option<&Conn> {
        self.map.get(&token).map(|e| &e.conn)
    }

    /// The state a connection is counted in (as of its last settle).
    pub(super) fn indexed_state(&self, token: u64) -> Option<State> {
        self.map.get(&token).map(|e| e.state)
    }

    /// The connection to work on. Call [`Conns::settle`] once the work is done.
    pub(super) fn get_mut(&mut self, token: u64) -> Option<&mut Conn> {
        self.map.get_mut(&token).map(|e| &mut e.conn)
    }

    pub(super) fn tokens(&self) -> Vec<u64> {
        self.map.keys().copied().collect()
    }

    /// After work on a connection: lets it restart its timer and re-indexes it.
    pub(super) fn settle(&mut self, token: u64, now: Instant) {
        let Some(entry) = self.map.get_mut(&token) else {
            return;
        };
        entry.conn.settle(now);
        let state = entry.conn.state();
        let deadline = entry.conn.deadline(self.keep_alive);
        let silent = entry.conn.unproductive_since();
        if entry.deadline.is_none_or(|at| deadline < at) {
            if let Some(at) = entry.deadline {
                self.deadlines.remove(&(at, token));
            }
            self.deadlines.insert((deadline, token));
            entry.deadline = Some(deadline);
        }
        // Silence only ever begins later, so an entry already there is early or right.
        if let (Some(at), None) = (silent, entry.silent) {
            self.silent.insert((at, token));
            entry.silent = Some(at);
        }
        if state != entry.state {
            self.counts[entry.state.index()] -= 1;
            self.counts[state.index()] += 1;
            entry.state = state;
        }
    }

    /// When the loop must wake next for a deadline.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|&(at, _)| at)
    }

    /// The connections whose deadline has passed, earliest first; they leave the deadline
    /// index (the caller closes them). An entry found early (the connection made progress that
    /// was not settled yet) is re-indexed at its true deadline instead.
    pub(super) fn expired(&mut self, now: Instant) -> Vec<u64> {
        let mut due = Vec::new();
        while let Some(&(at, token)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            let Some(entry) = self.map.get_mut(&token) else {
                continue;
            };
            let actual = entry.conn.deadline(self.keep_alive);
            if actual <= now {
                entry.deadline = None;
                due.push(token);
            } else {
                entry.deadline = Some(actual);
                self.deadlines.insert((actual, token));
            }
        }
        due
    }

    /// The least productive connection: waiting longest for a request, none in hand, and since
    /// when. Early entries met on the way are brought up to date.
    pub(super) fn least_productive(&mut self) -> Option<(Instant, u64)> {
        while let Some(&(at, token)) = self.silent.first() {
            let Some(entry) = self.map.get_mut(&token) else {
                self.silent.pop_first();
                continue;
            };
            match entry.conn.unproductive_since() {
                Some(actual) if actual == at => return Some((at, token)),
                actual => {
                    self.silent.pop_first();
                    entry.silent = actual;
                    if let Some(actual) = actual {
                        self.silent.insert((actual, token));
                    }
                }
            }
        }
        None
    }

    /// Open connections: (with a request in hand or waiting for one, idle between requests).
    pub(super) fn active_and_idle(&self) -> (usize, usize) {
        let idle = self.counts[State::Idle.index()];
        (self.map.len() - idle, idle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::queue::Peer;
    use std::os::fd::OwnedFd;

    fn conn(served: u64) -> Conn {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let peer = Peer {
            ip: String::new(),
            port: None,
        };
        Conn::new(OwnedFd::from(a), peer, served, Vec::new())
    }

    #[test]
    fn deadlines_come_out_in_order_and_only_when_due() {
        let mut conns = Conns::new(Duration::from_secs(2));
        conns.insert(1, conn(0)); // a silent new connection: 10 s
        conns.insert(2, conn(1)); // idle after an answer: keep-alive, 2 s
        let now = Instant::now();
        assert!(conns.expired(now).is_empty());
        assert_eq!(conns.expired(now + Duration::from_secs(3)), vec![2]);
        assert_eq!(conns.expired(now + Duration::from_secs(11)), vec![1]);
        assert!(conns.expired(now + Duration::from_secs(100)).is_empty());
    }

    /// A deadline that moved later is not re-indexed at once: its early entry is checked when
    /// it comes first, and the connection is closed only at its real deadline.
    #[test]
    fn an_early_entry_is_checked_not_obeyed() {
        let mut conns = Conns::new(Duration::from_secs(2));
        conns.insert(1, conn(0));
        let now = Instant::now();
        let head =
            crate::http::parse_head(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n", &Default::default())
                .unwrap()
                .unwrap();
        let ok = crate::app::Response::json(200, &serde_json::json!({}));
        let c = conns.get_mut(1).unwrap();
        c.respond(
            &head,
            &ok,
            true,
            super::super::connection::Outcome::Normal,
            now,
        );
        conns.settle(1, now);
        assert_eq!(conns.indexed_state(1), Some(State::Writing));
        assert!(
            conns.expired(now + Duration::from_secs(11)).is_empty(),
            "writing has 30 s, not the head's 10"
        );
        assert_eq!(conns.expired(now + Duration::from_secs(31)), vec![1]);
    }

    #[test]
    fn eviction_takes_the_longest_silent_and_counts_follow_states() {
        let mut conns = Conns::new(Duration::from_secs(2));
        conns.insert(7, conn(0));
        std::thread::sleep(Duration::from_millis(2));
        conns.insert(3, conn(1));
        assert_eq!(
            conns.least_productive().map(|(_, t)| t),
            Some(7),
            "silent since earlier"
        );
        assert_eq!(conns.active_and_idle(), (1, 1));
        conns.remove(7);
        assert_eq!(conns.least_productive().map(|(_, t)| t), Some(3));
        assert_eq!(conns.active_and_idle(), (0, 1));
        conns.remove(3);
        assert_eq!(conns.least_productive(), None);
        assert_eq!(conns.active_and_idle(), (0, 0));
        assert_eq!(conns.next_deadline(), None);
    }
}
