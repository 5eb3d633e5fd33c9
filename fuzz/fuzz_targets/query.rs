//! Arbitrary query strings through the heavy endpoint's parameter parsing and routing: nothing
//! may panic, and whatever is accepted must be within the caps.
#![no_main]

use heavy_api::io_store::DataFile;
use heavy_api::app::{App, HeavyParams, Limits, Route};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else { return };
    let limits = Limits::default();
    if let Ok(p) = HeavyParams::from_query(query, &limits) {
        assert!(p.prime_limit <= limits.max_prime_limit);
        assert!(p.hash_rounds <= limits.max_hash_rounds);
        assert!((0..=limits.max_io_kb).contains(&p.io_kb));
    }
    let app = App::new(limits, DataFile::new("/nonexistent/fuzz.bin"));
    match app.route("GET", "/heavy/cpu-io-no-db/", query) {
        Route::Ready(resp) => assert!(resp.status == 400, "{}", resp.status),
        Route::Heavy(_) => {}
    }
    let _ = heavy_api::app::query::parse_integer(query);
});
