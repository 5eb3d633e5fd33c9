//! `heavy-api healthcheck [URL]`: the container's health probe. The runtime image has no shell
//! or curl, so the binary probes itself: GET /heavy/health/, exit 0 on a 200, 1 otherwise.

use crate::client::{self, ClientError};
use std::time::Duration;

/// Why the probe says unhealthy.
#[derive(Debug, thiserror::Error)]
pub enum Unhealthy {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{url} answered {status}")]
    Status { url: String, status: u16 },
}

/// Probes `url` and returns the exit status. A URL without a path gets `/heavy/health/`.
pub fn run(url: &str, timeout: Duration) -> i32 {
    match probe(url, timeout) {
        Ok(()) => 0,
        Err(why) => {
            eprintln!("unhealthy: {why}");
            1
        }
    }
}

/// The URL to probe: `url` as given, or with `/heavy/health/` when it has no path.
pub fn health_url(url: &str) -> Result<String, ClientError> {
    let (host, port, path) = client::parse_url(url)?;
    let path = if path == "/" {
        crate::app::HEALTH_PATH
    } else {
        &path
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    Ok(format!("http://{host}:{port}{path}"))
}

fn probe(url: &str, timeout: Duration) -> Result<(), Unhealthy> {
    let url = health_url(url)?;
    let answer = client::get(&url, timeout)?;
    if answer.status == 200 {
        Ok(())
    } else {
        Err(Unhealthy::Status {
            url,
            status: answer.status,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_without_a_path_probe_health() {
        assert_eq!(
            health_url("http://127.0.0.1:8000").unwrap(),
            "http://127.0.0.1:8000/heavy/health/"
        );
        assert_eq!(health_url("localhost:9/x").unwrap(), "http://localhost:9/x");
        assert_eq!(
            health_url("http://[::1]:8000/").unwrap(),
            "http://[::1]:8000/heavy/health/"
        );
        assert!(health_url("https://x").is_err());
    }

    #[test]
    fn a_closed_port_is_unhealthy() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        assert_eq!(
            run(&format!("http://127.0.0.1:{port}"), Duration::from_secs(1)),
            1
        );
    }
}
