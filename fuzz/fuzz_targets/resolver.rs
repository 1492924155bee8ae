//! The sandboxed path resolver over the fixture home with its symlinks: any
//! input is refused or lands under home without passing through a symlink.
#![no_main]

use std::path::{Component, Path};

use clawft::home::{Home, HomeSource};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(relative) = std::str::from_utf8(data) else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/sandbox/home");
    let home = Home::at(&root, HomeSource::ClawftHome);
    let Ok(path) = home.resolve(relative) else {
        return;
    };
    let inner = path.strip_prefix(&root).expect("resolved under home");
    let mut here = root.clone();
    for part in inner.components() {
        assert!(matches!(part, Component::Normal(_)), "{relative:?} -> {path:?}");
        here.push(part);
        let link = std::fs::symlink_metadata(&here).is_ok_and(|m| m.file_type().is_symlink());
        assert!(!link, "{relative:?} -> {path:?} passes through a symlink");
    }
});
