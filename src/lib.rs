//! heavy-api: a Rust reproduction of a Django + Gunicorn load-testing service.
//!
//! Layers, innermost first; each module uses only those above it in this list (the test
//! `tests/layers.rs` reads every `crate::` path and holds the code to it):
//! - value types and leaves: [`response`] (a response as a value: the application builds it,
//!   the HTTP layer writes it), [`io_store`] (the shared data file), [`shared`] and [`signals`]
//!   (the shared-memory slots and the signal queue that master and workers use), [`proctitle`],
//!   [`statsd`] (Gunicorn's statsd metrics), [`client`] (the small HTTP client of the health check
//!   and the ECS metadata read);
//! - [`log`]: Gunicorn-style logs;
//! - [`platform`]: what the machine is (CPUs, cgroup limits, steal, ECS task) — files only;
//! - [`app`]: the endpoints and their kernels — no sockets, no processes;
//! - [`http`]: HTTP/1.1 request parsing, framing and response writing — bytes in, bytes out;
//! - [`config`]: the Gunicorn-style command line, with [`settings`] (what becomes of each of
//!   Gunicorn's settings) and [`gunicorn_conf`] (the config-file subset), one group;
//! - [`metrics`]: counters and histograms in shared memory, and their exposition;
//! - [`healthcheck`]: the image's `HEALTHCHECK` probe;
//! - [`worker`]: one worker process — event loop, shared request queue, handler threads;
//! - [`master`]: the supervising process — listeners, fork, signals, heartbeats. No HTTP, no
//!   application.

pub mod app;
pub mod client;
pub mod config;
pub mod gunicorn_conf;
pub mod healthcheck;
pub mod http;
pub mod io_store;
pub mod log;
pub mod master;
pub mod metrics;
pub mod platform;
pub mod proctitle;
pub mod response;
pub mod settings;
pub mod shared;
pub mod signals;
pub mod statsd;
pub mod worker;
