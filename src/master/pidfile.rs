//! `--pid FILE`: the master's pid, written at start and removed at exit.

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use std::path::{Path, PathBuf};

pub struct Pidfile {
    path: PathBuf,
}

impl Pidfile {
    /// Writes our pid, refusing if the file names another live process. The file appears whole
    /// or not at all (written beside it, then renamed), so a reader never sees it half-written.
    pub fn create(path: &Path) -> Result<Pidfile, String> {
        let ours = std::process::id() as i32;
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Ok(pid) = text.trim().parse::<i32>() {
                if pid > 0 && pid != ours && is_alive(pid) {
                    return Err(format!(
                        "Already running on PID {pid} (or pid file '{}' is stale)",
                        path.display()
                    ));
                }
            }
        }
        let mut temp = path.as_os_str().to_owned();
        temp.push(format!(".{ours}.tmp"));
        let temp = PathBuf::from(temp);
        let written =
            std::fs::write(&temp, format!("{ours}\n")).and_then(|()| std::fs::rename(&temp, path));
        if let Err(err) = written {
            let _ = std::fs::remove_file(&temp);
            return Err(format!("cannot write pid file '{}': {err}", path.display()));
        }
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

/// Whether a process with this pid exists: one we may not signal (EPERM) exists too.
fn is_alive(pid: i32) -> bool {
    matches!(kill(Pid::from_raw(pid), None), Ok(()) | Err(Errno::EPERM))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_pid_is_refused_a_dead_one_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("heavy.pid");
        // PID 1 exists (and, unprivileged, answers EPERM): alive either way.
        std::fs::write(&path, "1\n").unwrap();
        let refused = Pidfile::create(&path).err().expect("pid 1 is alive");
        assert!(refused.contains("Already running on PID 1"), "{refused}");
        // A pid that no process has.
        std::fs::write(&path, format!("{}\n", i32::MAX)).unwrap();
        let file = Pidfile::create(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{}\n", std::process::id())
        );
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file is left behind");
        file.remove();
        assert!(!path.exists());
    }
}
