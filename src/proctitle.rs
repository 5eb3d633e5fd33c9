//! Process titles as Gunicorn's setproctitle sets them (`heavy-api: master [NAME]`,
//! `heavy-api: worker [NAME]`), so `ps` and `top` tell the master from the workers.
//!
//! Two places carry a title on Linux: the thread name (`/proc/PID/comm`, 15 bytes, what `top`
//! shows), set with `prctl(PR_SET_NAME)`; and the argument area (`/proc/PID/cmdline`, what
//! `ps` shows), which is overwritten in place. Only the original arguments' bytes are used, so
//! a title longer than the command line that started the process is cut short.

use std::ffi::OsString;
use std::sync::{Mutex, OnceLock};

static ORIGINAL_ARGS: OnceLock<Vec<OsString>> = OnceLock::new();
/// Serialises writers of the argument area.
static WRITING: Mutex<()> = Mutex::new(());

/// The command line the process started with. Read before the first title overwrites the
/// argument area (`set` makes sure of it): `std::env::args` reads those same bytes on every
/// call (std keeps argv's pointers, not a copy), so after a title it would return the title.
pub fn original_args() -> &'static [OsString] {
    ORIGINAL_ARGS.get_or_init(|| std::env::args_os().collect())
}

/// Sets the title; silently does nothing where the kernel does not let it.
pub fn set(title: &str) {
    original_args();
    let _writing = WRITING.lock().unwrap_or_else(|e| e.into_inner());
    let comm = std::ffi::CString::new(title.replace('\0', " ")).unwrap_or_default();
    // SAFETY: PR_SET_NAME reads a NUL-terminated string (the kernel copies at most 16 bytes).
    unsafe {
        libc::prctl(libc::PR_SET_NAME, comm.as_ptr() as libc::c_ulong, 0, 0, 0);
    }
    if let Some((start, end)) = argument_area() {
        let len = end - start;
        if len < 2 {
            return;
        }
        let bytes = title.as_bytes();
        let n = bytes.len().min(len - 1);
        // SAFETY: [start, end) is this process's argument area as the kernel reports it
        // (/proc/self/stat fields 48-49): the argv strings on the initial stack, mapped and
        // writable for the life of the process and never freed or moved. The bytes are read
        // through argv's pointers (std::env::args, glibc's program_invocation_name); the
        // arguments were copied by `original_args` above, before any write, and nothing in
        // heavy-api reads argv otherwise (main takes `original_args`), so no read races this
        // write; writers are serialised by `WRITING`.
        unsafe {
            let area = std::slice::from_raw_parts_mut(start as *mut u8, len);
            area[..n].copy_from_slice(&bytes[..n]);
            area[n..].fill(0);
        }
    }
}

/// `arg_start` and `arg_end` from `/proc/self/stat`.
fn argument_area() -> Option<(usize, usize)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces and parentheses) start at field 3.
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let start: usize = fields.get(48 - 3)?.parse().ok()?;
    let end: usize = fields.get(49 - 3)?.parse().ok()?;
    (start != 0 && end > start).then_some((start, end))
}

/// The master's title.
pub fn master(name: &str) -> String {
    format!("heavy-api: master [{name}]")
}

/// A worker's title.
pub fn worker(name: &str) -> String {
    format!("heavy-api: worker [{name}]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_title_leaves_the_original_arguments_readable() {
        let before: Vec<OsString> = std::env::args_os().collect();
        set("heavy-api: test title");
        assert_eq!(original_args(), &before[..]);
        let title = std::fs::read("/proc/self/cmdline").unwrap();
        assert!(title.starts_with(b"heavy-api: t"), "{title:?}");
    }
}
