//! heavy-api: a Rust reproduction of a Django + Gunicorn load-testing service.
//!
//! Layers, innermost first (each uses only those above it in this list):
//! - [`app`]: the two endpoints and their kernels — no sockets, no processes.
//! - [`http`]: HTTP/1.1 request parsing, framing and response writing — bytes in, bytes out.
//! - [`worker`]: one worker process — event loop, shared request queue, handler threads.
//! - [`master`]: the supervising process — listeners, fork, signals, heartbeats. No HTTP.
//! - [`config`]: the Gunicorn-style command line, with [`settings`] (what becomes of each of
//!   Gunicorn's settings) and [`gunicorn_conf`] (the config-file subset); [`log`]:
//!   Gunicorn-style logs; [`statsd`]: Gunicorn's statsd metrics; [`proctitle`]: process titles;
//!   [`shared`] and [`signals`]: the shared-memory slots and the signal queue that master and
//!   workers use.
//! - [`metrics`]: counters and histograms in shared memory, and their exposition;
//!   [`platform`]: what the machine is (CPUs, cgroup limits, steal, ECS task) — files only;
//!   [`client`]: the small HTTP client of the health check and the ECS metadata read.

pub mod app;
pub mod client;
pub mod config;
pub mod gunicorn_conf;
pub mod healthcheck;
pub mod http;
pub mod log;
pub mod master;
pub mod metrics;
pub mod platform;
pub mod proctitle;
pub mod settings;
pub mod shared;
pub mod signals;
pub mod statsd;
pub mod worker;
