//! `--pid FILE`: the master's pid, written at start and removed at exit.

use nix::sys::signal::kill;
use nix::unistd::Pid;
use std::path::{Path, PathBuf};

pub struct Pidfile {
    path: PathBuf,
}

impl Pidfile {
    /// Writes our pid, refusing if the file names another live process.
    pub fn create(path: &Path) -> Result<Pidfile, String> {
        let ours = std::process::id() as i32;
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Ok(pid) = text.trim().parse::<i32>() {
                if pid > 0 && pid != ours && kill(Pid::from_raw(pid), None).is_ok() {
                    return Err(format!(
                        "Already running on PID {pid} (or pid file '{}' is stale)",
                        path.display()
                    ));
                }
            }
        }
        std::fs::write(path, format!("{ours}\n"))
            .map_err(|e| format!("cannot write pid file '{}': {e}", path.display()))?;
        Ok(Pidfile {
            path: path.to_path_buf(),
        })
    }

    /// Removes the file if it still holds our pid.
    pub fn remove(self) {
        let ours = std::process::id().to_string();
        if std::fs::read_to_string(&self.path).is_ok_and(|t| t.trim() == ours) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
