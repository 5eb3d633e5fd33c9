//! The ECS task metadata endpoint (version 4): read once at boot, with a short timeout, when
//! `$ECS_CONTAINER_METADATA_URI_V4` is set — never on a request's path. Off ECS it is absent,
//! which is not an error.

use crate::client;
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;

/// The variable ECS (EC2 agent 1.39+, Fargate 1.4+) sets in every container.
pub const METADATA_ENV: &str = "ECS_CONTAINER_METADATA_URI_V4";
/// The whole read (container and task documents) gives up after this long.
const TIMEOUT: Duration = Duration::from_millis(1500);

/// What the comparison needs from the task and container metadata.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EcsTask {
    /// `EC2` or `FARGATE`.
    pub launch_type: Option<String>,
    pub availability_zone: Option<String>,
    pub cluster: Option<String>,
    pub task_arn: Option<String>,
    pub family: Option<String>,
    pub revision: Option<String>,
    /// Task-level limits: vCPUs and MiB.
    pub task_cpu: Option<f64>,
    pub task_memory_mib: Option<f64>,
    /// Fargate only.
    pub platform_version: Option<String>,
    /// The container's image and its digest: "same image" is a fact, not an assumption.
    pub image: Option<String>,
    pub image_digest: Option<String>,
    /// Start-up as ECS timed it (RFC 3339): the task's image pull, and this container's creation
    /// and start. With the server's own `ready_at`, how fast a platform brings a task up.
    pub pull_started_at: Option<String>,
    pub pull_stopped_at: Option<String>,
    pub container_created_at: Option<String>,
    pub container_started_at: Option<String>,
}

/// Why the metadata could not be read (the boot log's warning says it).
#[derive(Debug, thiserror::Error)]
pub enum EcsError {
    #[error(transparent)]
    Client(#[from] client::ClientError),
    #[error("{url} answered {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: {source}")]
    Json {
        url: String,
        source: serde_json::Error,
    },
}

/// Reads the metadata if the endpoint's variable is set. `Err` says what went wrong (logged as a
/// warning at boot); `Ok(None)`: not on ECS.
pub fn read(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<EcsTask>, EcsError> {
    let Some(base) = env(METADATA_ENV).filter(|b| !b.is_empty()) else {
        return Ok(None);
    };
    let base = base.trim_end_matches('/');
    let fetch = |url: &str| -> Result<Value, EcsError> {
        let answer = client::get(url, TIMEOUT)?;
        if answer.status != 200 {
            return Err(EcsError::Status {
                url: url.to_string(),
                status: answer.status,
            });
        }
        serde_json::from_str(&answer.body).map_err(|source| EcsError::Json {
            url: url.to_string(),
            source,
        })
    };
    let task = fetch(&format!("{base}/task"))?;
    let container = fetch(base).unwrap_or(Value::Null);
    Ok(Some(EcsTask::from_documents(&task, &container)))
}

impl EcsTask {
    pub fn from_documents(task: &Value, container: &Value) -> EcsTask {
        let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_string);
        let limits = task.get("Limits").unwrap_or(&Value::Null);
        EcsTask {
            launch_type: text(task, "LaunchType"),
            availability_zone: text(task, "AvailabilityZone"),
            cluster: text(task, "Cluster"),
            task_arn: text(task, "TaskARN"),
            family: text(task, "Family"),
            revision: text(task, "Revision"),
            task_cpu: limits.get("CPU").and_then(Value::as_f64),
            task_memory_mib: limits.get("Memory").and_then(Value::as_f64),
            platform_version: text(task, "PlatformVersion"),
            image: text(container, "Image"),
            image_digest: text(container, "ImageID"),
            pull_started_at: text(task, "PullStartedAt"),
            pull_stopped_at: text(task, "PullStoppedAt"),
            container_created_at: text(container, "CreatedAt"),
            container_started_at: text(container, "StartedAt"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_fields_the_comparison_needs() {
        let task = json!({
            "Cluster": "arn:aws:ecs:us-east-1:111122223333:cluster/bench",
            "TaskARN": "arn:aws:ecs:us-east-1:111122223333:task/bench/0123",
            "Family": "heavy-api", "Revision": "7",
            "Limits": {"CPU": 2, "Memory": 4096},
            "AvailabilityZone": "us-east-1a", "LaunchType": "FARGATE",
            "PlatformVersion": "1.4.0",
            "PullStartedAt": "2026-12-05T10:00:01.123456789Z",
            "PullStoppedAt": "2026-12-05T10:00:09.5Z",
        });
        let container = json!({
            "Image": "repo/heavy-api:1", "ImageID": "sha256:abc",
            "CreatedAt": "2026-12-05T10:00:10Z", "StartedAt": "2026-12-05T10:00:11.25Z",
        });
        let t = EcsTask::from_documents(&task, &container);
        assert_eq!(t.launch_type.as_deref(), Some("FARGATE"));
        assert_eq!(t.task_cpu, Some(2.0));
        assert_eq!(t.task_memory_mib, Some(4096.0));
        assert_eq!(t.image_digest.as_deref(), Some("sha256:abc"));
        assert_eq!(
            t.pull_started_at.as_deref(),
            Some("2026-12-05T10:00:01.123456789Z")
        );
        assert_eq!(t.pull_stopped_at.as_deref(), Some("2026-12-05T10:00:09.5Z"));
        assert_eq!(
            t.container_created_at.as_deref(),
            Some("2026-12-05T10:00:10Z")
        );
        assert_eq!(
            t.container_started_at.as_deref(),
            Some("2026-12-05T10:00:11.25Z")
        );
        assert_eq!(read(&|_| None).unwrap(), None);
    }
}
