//! The heavy endpoint's work with no HTTP and no processes: one run of `App::run_heavy` per line
//! of output, for the benchmarks to compare against the same request served over HTTP.
//!
//! Usage: `kernel [RUNS] [IO_FILE]`; prints `total_ms cpu_ms io_ms` per run.

use heavy_api::app::kernels::Deadline;
use heavy_api::app::{App, HeavyParams, Limits};
use heavy_api::io_store::DataFile;
use std::time::{Duration, Instant};

fn main() {
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let io_file = args.next().unwrap_or_else(|| {
        std::env::temp_dir()
            .join("heavy_api_kernel_bench.bin")
            .display()
            .to_string()
    });
    let app = App::new(Limits::default(), DataFile::new(io_file));
    app.data_file().prepare().expect("io file");
    for _ in 0..runs {
        let start = Instant::now();
        let (resp, _) = app
            .run_heavy(HeavyParams::default(), Deadline::none(), Duration::ZERO)
            .expect("no deadline");
        let total = start.elapsed();
        let timing = resp.header("Server-Timing").unwrap_or_default().to_string();
        let field = |name: &str| {
            timing
                .split(", ")
                .find_map(|p| p.strip_prefix(&format!("{name};dur=")))
                .unwrap_or("0")
                .to_string()
        };
        println!(
            "{:.3} {} {}",
            total.as_secs_f64() * 1000.0,
            field("cpu"),
            field("io")
        );
    }
}
