//! Process titles as Gunicorn's setproctitle sets them (`heavy-api: master [NAME]`,
//! `heavy-api: worker [NAME]`), so `ps` and `top` tell the master from the workers.
//!
//! Two places carry a title on Linux: the thread name (`/proc/PID/comm`, 15 bytes, what `top`
//! shows), set with `prctl(PR_SET_NAME)`; and the argument area (`/proc/PID/cmdline`, what
//! `ps` shows), which is overwritten in place. Only the original arguments' bytes are used, so
//! a title longer than the command line that started the process is cut short.

/// Sets the title; silently does nothing where the kernel does not let it.
pub fn set(title: &str) {
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
        // SAFETY: [start, end) is this process's own argument area, as the kernel reports it
        // (/proc/self/stat fields 48-49): mapped and writable stack memory for the life of the
        // process. Everything that read it (std's copy of argv) did so at start; the master
        // keeps its own copy of the arguments for reloads.
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
