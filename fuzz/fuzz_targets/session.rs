//! The session loader: any bytes give whole messages plus numbered skipped
//! lines, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (messages, skipped) = clawft::session::parse(data);
    let lines = data.split(|&b| b == b'\n').count();
    assert!(messages.len() + skipped.len() <= lines);
    for pair in skipped.windows(2) {
        assert!(pair[0].line < pair[1].line);
    }
    assert!(skipped.iter().all(|s| s.line >= 1 && s.line <= lines));
});
