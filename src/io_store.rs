//! The I/O half of the heavy endpoint: a shared data file that every request appends to (with
//! fsync) and reads back, under a lock.
//!
//! The original held a thread lock, which in a multi-process server only serialises the threads
//! of one worker. Here the lock is `flock(2)` on the file itself, so it holds across every worker
//! process (and every thread: each operation opens its own file description).

use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The original stops appending once the file reaches 5 MiB.
pub const FILE_CAP_BYTES: u64 = 5 * 1024 * 1024;
/// Size of the random seed content written when the file is first created.
pub const SEED_BYTES: usize = 1024 * 1024;

/// What one append-and-read did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoStats {
    /// Bytes read back.
    pub bytes: usize,
    /// How long the fsync took (zero when none was asked for, or the file is at its cap).
    pub fsync: Duration,
}

/// The shared data file, by path. Cheap to clone; holds no descriptor between requests.
///
/// The default path is in the shared temp directory, so every open refuses what another user
/// could plant there: a symlink (`O_NOFOLLOW`) or anything but a regular file. Opens never
/// block (`O_NONBLOCK`: a FIFO would otherwise hang the opening thread until a peer appears).
#[derive(Debug, Clone)]
pub struct DataFile {
    path: PathBuf,
}

impl DataFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        DataFile { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates the file with 1 MiB of random bytes if it is missing or empty, and proves it is
    /// writable. The master calls this once at start, so a bad `--io-file` stops the start
    /// rather than failing requests; at run time a request does the same if the file vanished.
    pub fn prepare(&self) -> io::Result<()> {
        let file = self.open(OpenOptions::new().create(true).append(true))?;
        let mut file = lock(file, FlockArg::LockExclusive)?;
        if file.metadata()?.len() == 0 {
            file.write_all(&random_bytes(SEED_BYTES)?)?;
            file.sync_all()?;
        }
        Ok(())
    }

    /// What `--check-config` asks: could [`prepare`](Self::prepare) succeed? Changes nothing:
    /// an existing file must be a regular file we can open for appending; a missing one needs a
    /// directory we can create it in.
    pub fn check(&self) -> io::Result<()> {
        match std::fs::symlink_metadata(&self.path) {
            Ok(_) => self.open(OpenOptions::new().append(true)).map(drop),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                let dir = match self.path.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p,
                    _ => Path::new("."),
                };
                if !std::fs::metadata(dir)?.is_dir() {
                    return Err(io::Error::other(format!(
                        "{} is not a directory",
                        dir.display()
                    )));
                }
                nix::unistd::access(
                    dir,
                    nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
                )
                .map_err(|e| {
                    io::Error::other(format!("cannot create files in {}: {e}", dir.display()))
                })
            }
            Err(err) => Err(err),
        }
    }

    /// Appends `kb` KiB of fresh random bytes (unless the file is at its cap), fsyncs (when
    /// `sync`), then reads back the first `kb` KiB. Zero KiB is no I/O at all: the original
    /// opened, locked and fsynced the file to append and read nothing, and that fsync of nothing
    /// is a disk cache flush on ext4 that made nothing durable.
    pub fn append_and_read(&self, kb: u64, sync: bool) -> io::Result<IoStats> {
        if kb == 0 {
            return Ok(IoStats {
                bytes: 0,
                fsync: Duration::ZERO,
            });
        }
        let len = usize::try_from(kb * 1024)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "io size too large"))?;
        let payload = random_bytes(len)?;
        let mut fsync = Duration::ZERO;
        {
            let file = match self.open(OpenOptions::new().append(true)) {
                Err(err) if err.kind() == io::ErrorKind::NotFound => {
                    // Removed while serving: recreate it as the original would.
                    self.prepare()?;
                    self.open(OpenOptions::new().append(true))?
                }
                other => other?,
            };
            let mut file = lock(file, FlockArg::LockExclusive)?;
            if file.metadata()?.len() < FILE_CAP_BYTES {
                file.write_all(&payload)?;
                file.flush()?;
                if sync {
                    let started = std::time::Instant::now();
                    file.sync_all()?;
                    fsync = started.elapsed();
                }
            }
        }
        let file = self.open(OpenOptions::new().read(true))?;
        let file = lock(file, FlockArg::LockShared)?;
        let mut read_back = Vec::with_capacity(len);
        (&*file).take(len as u64).read_to_end(&mut read_back)?;
        Ok(IoStats {
            bytes: read_back.len(),
            fsync,
        })
    }

    /// Opens the file without following a symlink and without blocking, and only if it is a
    /// regular file.
    fn open(&self, options: &mut OpenOptions) -> io::Result<File> {
        let file = options
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&self.path)
            .map_err(|err| match err.raw_os_error() {
                Some(libc::ELOOP) => io::Error::other(format!(
                    "{} is a symbolic link; refusing to follow it",
                    self.path.display()
                )),
                Some(libc::ENXIO) => self.not_regular(),
                _ => err,
            })?;
        if !file.metadata()?.is_file() {
            return Err(self.not_regular());
        }
        Ok(file)
    }

    fn not_regular(&self) -> io::Error {
        io::Error::other(format!("{} is not a regular file", self.path.display()))
    }
}

fn lock(file: File, how: FlockArg) -> io::Result<Flock<File>> {
    Flock::lock(file, how).map_err(|(_, errno)| io::Error::from(errno))
}

/// `len` bytes from the kernel's CSPRNG (the original used `os.urandom`).
pub fn random_bytes(len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    getrandom::fill(&mut buf).map_err(io::Error::from)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.bin");
        (dir, path)
    }

    #[test]
    fn prepare_seeds_one_mebibyte_once() {
        let (_dir, path) = temp_path();
        let data = DataFile::new(&path);
        data.prepare().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), SEED_BYTES as u64);
        data.prepare().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), SEED_BYTES as u64);
    }

    #[test]
    fn zero_kib_touches_nothing() {
        // Not even a missing file is recreated: no open, no lock, no fsync.
        let (_dir, path) = temp_path();
        let stats = DataFile::new(&path).append_and_read(0, true).unwrap();
        assert_eq!(stats.bytes, 0);
        assert_eq!(stats.fsync, Duration::ZERO);
        assert!(!path.exists());
    }

    #[test]
    fn append_grows_the_file_until_the_cap() {
        let (_dir, path) = temp_path();
        let data = DataFile::new(&path);
        assert_eq!(data.append_and_read(64, true).unwrap().bytes, 64 * 1024);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            (SEED_BYTES + 64 * 1024) as u64
        );
        // 1 MiB seed + 4 more MiB reaches the cap; the next append is skipped.
        for _ in 0..4 {
            data.append_and_read(1024, true).unwrap();
        }
        let full = std::fs::metadata(&path).unwrap().len();
        assert!(full >= FILE_CAP_BYTES);
        assert_eq!(data.append_and_read(1024, true).unwrap().bytes, 1024 * 1024);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), full);
    }

    #[test]
    fn an_unwritable_location_fails_prepare() {
        let data = DataFile::new("/proc/heavy-api-cannot-write-here/data.bin");
        assert!(data.prepare().is_err());
    }

    #[test]
    fn symlinks_fifos_and_directories_are_refused_without_blocking() {
        let (dir, path) = temp_path();
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, b"secret").unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let data = DataFile::new(&path);
        let err = data.append_and_read(1, true).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
        assert!(data.check().is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"secret");

        std::fs::remove_file(&path).unwrap();
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let err = data.append_and_read(1, true).unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
        assert!(data.prepare().is_err());

        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        assert!(data.append_and_read(1, true).is_err());
    }

    #[test]
    fn check_changes_nothing() {
        let (dir, path) = temp_path();
        let data = DataFile::new(&path);
        data.check().unwrap();
        assert!(!path.exists(), "checking must not create the file");
        assert!(DataFile::new(dir.path().join("no-such-dir/data.bin"))
            .check()
            .is_err());
        data.prepare().unwrap();
        let before = std::fs::read(&path).unwrap();
        data.check().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn random_bytes_are_random() {
        let a = random_bytes(64).unwrap();
        let b = random_bytes(64).unwrap();
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
