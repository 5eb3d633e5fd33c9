//! The I/O half of the heavy endpoint: a shared data file that every request appends to (with
//! fsync) and reads back, under a lock.
//!
//! The original held a thread lock, which in a multi-process server only serialises the threads
//! of one worker. Here the lock is `flock(2)` on the file itself, so it holds across every worker
//! process (and every thread: each operation opens its own file description).

use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// The original stops appending once the file reaches 5 MiB.
pub const FILE_CAP_BYTES: u64 = 5 * 1024 * 1024;
/// Size of the random seed content written when the file is first created.
pub const SEED_BYTES: usize = 1024 * 1024;

/// The shared data file, by path. Cheap to clone; holds no descriptor between requests.
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
    /// writable. Workers call this at boot so a bad `--io-file` fails the boot, not a request.
    pub fn prepare(&self) -> io::Result<()> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        let mut file = lock(file, FlockArg::LockExclusive)?;
        if file.metadata()?.len() == 0 {
            file.write_all(&random_bytes(SEED_BYTES)?)?;
            file.sync_all()?;
        }
        Ok(())
    }

    /// Appends `kb` KiB of fresh random bytes (unless the file is at its cap), fsyncs, then reads
    /// back the first `kb` KiB. Returns the number of bytes read.
    pub fn append_and_read(&self, kb: u64) -> io::Result<usize> {
        let len = usize::try_from(kb * 1024)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "io size too large"))?;
        let payload = random_bytes(len)?;
        if !self.path.exists() {
            self.prepare()?;
        }
        {
            let file = OpenOptions::new().append(true).open(&self.path)?;
            let mut file = lock(file, FlockArg::LockExclusive)?;
            if file.metadata()?.len() < FILE_CAP_BYTES {
                file.write_all(&payload)?;
                file.flush()?;
                file.sync_all()?;
            }
        }
        let file = File::open(&self.path)?;
        let file = lock(file, FlockArg::LockShared)?;
        let mut read_back = Vec::with_capacity(len);
        (&*file).take(len as u64).read_to_end(&mut read_back)?;
        Ok(read_back.len())
    }
}

fn lock(file: File, how: FlockArg) -> io::Result<Flock<File>> {
    Flock::lock(file, how).map_err(|(_, errno)| io::Error::from(errno))
}

/// `len` bytes from the kernel's CSPRNG (the original used `os.urandom`).
pub fn random_bytes(len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        // SAFETY: the pointer and length describe the unfilled tail of `buf`.
        let n = unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), len - filled, 0) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        filled += n as usize;
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("heavy-api-test-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("data.bin")
    }

    #[test]
    fn prepare_seeds_one_mebibyte_once() {
        let path = temp_path("seed");
        let _ = std::fs::remove_file(&path);
        let data = DataFile::new(&path);
        data.prepare().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), SEED_BYTES as u64);
        data.prepare().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), SEED_BYTES as u64);
    }

    #[test]
    fn append_grows_the_file_until_the_cap() {
        let path = temp_path("cap");
        let _ = std::fs::remove_file(&path);
        let data = DataFile::new(&path);
        assert_eq!(data.append_and_read(64).unwrap(), 64 * 1024);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            (SEED_BYTES + 64 * 1024) as u64
        );
        // 1 MiB seed + 4 more MiB reaches the cap; the next append is skipped.
        for _ in 0..4 {
            data.append_and_read(1024).unwrap();
        }
        let full = std::fs::metadata(&path).unwrap().len();
        assert!(full >= FILE_CAP_BYTES);
        assert_eq!(data.append_and_read(1024).unwrap(), 1024 * 1024);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), full);
    }

    #[test]
    fn zero_kb_reads_nothing_and_a_missing_file_is_recreated() {
        let path = temp_path("zero");
        let _ = std::fs::remove_file(&path);
        assert_eq!(DataFile::new(&path).append_and_read(0).unwrap(), 0);
        assert!(path.exists());
    }

    #[test]
    fn an_unwritable_location_fails_prepare() {
        let data = DataFile::new("/proc/heavy-api-cannot-write-here/data.bin");
        assert!(data.prepare().is_err());
    }

    #[test]
    fn random_bytes_are_random() {
        let a = random_bytes(64).unwrap();
        let b = random_bytes(64).unwrap();
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
