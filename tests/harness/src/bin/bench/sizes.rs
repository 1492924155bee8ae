//! Artifact sizes: raw, `gzip -9`, and what `wasm-opt -Oz` makes of the wasm.

use std::path::Path;
use std::process::Command;

use crate::report::{Report, Table};
use crate::stats::{change, thousands};
use crate::{Bench, Wasm};

pub struct Sizes {
    artifacts: Table,
    images: Option<Table>,
    images_note: String,
    /// Whether the shipped (wasm-opt'd) component runs `weft status`.
    pub optimised_runs: bool,
}

pub fn measure(bench: &Bench) -> Sizes {
    let p2 = bench.component();
    let p2_plain = bench.built("weft-noopt.wasm");
    let p2_core = bench.linked("wasm32-wasip2", "weft.wasm");
    let p1 = bench.shipped("wasm32-wasip1", "weft.wasm");
    let p1_plain = bench.linked("wasm32-wasip1", "weft.wasm");
    let optimised_runs = runs_status(bench, &p2);

    let mut table = Table::new(&[
        "artifact",
        ">bytes",
        ">gzip -9",
        ">wasm-opt saved (raw / gzip)",
    ]);
    let mut row = |what: &str, path: &Path, without_opt: Option<&Path>| {
        let (raw, gz) = size(path);
        let saved = match without_opt {
            Some(plain) => {
                let (plain_raw, plain_gz) = size(plain);
                format!("{} / {}", change(raw, plain_raw), change(gz, plain_gz))
            }
            None => String::new(),
        };
        table.row(vec![what.into(), thousands(raw), thousands(gz), saved]);
    };
    let runs = if optimised_runs {
        "runs `weft status`"
    } else {
        "**does NOT run `weft status`**"
    };
    row(
        &format!("**`weft.wasm` wasip2 component**, shipped: wasm-opt -Oz ({runs})"),
        &p2,
        Some(&p2_plain),
    );
    row(
        "… the same without the wasm-opt pass (control)",
        &p2_plain,
        None,
    );
    row(
        "… its core module as rustc links it (`--skip-wit-component`)",
        &p2_core,
        None,
    );
    for (name, what) in [
        ("clawft-agent", "the agent as a library"),
        ("weft-gateway", "the gateway, a `wasi:http` handler"),
    ] {
        row(
            &format!("**`{name}.wasm` wasip2 component** ({what}), shipped: wasm-opt -Oz"),
            &bench.shipped_component(&format!("{name}.wasm")),
            Some(&bench.built(&format!("{name}-noopt.wasm"))),
        );
        row(
            "… the same without the wasm-opt pass (control)",
            &bench.built(&format!("{name}-noopt.wasm")),
            None,
        );
    }
    row(
        "**`weft.wasm` wasip1 module**, shipped: wasm-opt -Oz",
        &p1,
        Some(&p1_plain),
    );
    row("… as rustc links it (control)", &p1_plain, None);
    row(
        "**`weft` static x86_64** (musl)",
        &bench.shipped("x86_64-unknown-linux-musl", "weft"),
        None,
    );
    row(
        "**`weft` static aarch64** (musl)",
        &bench.shipped("aarch64-unknown-linux-musl", "weft"),
        None,
    );
    let arch = std::env::consts::ARCH;
    row(
        &format!("`weft.cwasm` (`wasmtime compile` of the shipped component, {arch})"),
        &bench.built("weft.cwasm"),
        None,
    );
    row(
        "floor: hello-world wasip2 component",
        &bench.built("hello.wasm"),
        None,
    );
    row(
        &format!("floor: hello-world static musl {arch}"),
        &bench.built("hello-musl"),
        None,
    );

    let (images, images_note) = images(bench);
    Sizes {
        artifacts: table,
        images,
        images_note,
        optimised_runs,
    }
}

impl Sizes {
    pub fn write(&self, report: &mut Report) {
        report.heading(2, "Sizes");
        report.para(
            "Bytes on disk, and the same file through `gzip -9` (what a download \
             costs). The shipped files are `scripts/build`'s, in `target/dist/`: the \
             wasip2 core module (linked with `-C link-arg=--skip-wit-component`, since \
             wasm-opt cannot read components) through `wasm-opt -Oz` with Rust's wasm \
             features, then `wasm-tools component new` and `wasm-tools strip --all`. \
             The control skips only the wasm-opt pass (`wasm-tools component new` and \
             `strip --all` on the same core module), so the last column is what \
             wasm-opt earns. All three wasip2 components are built from the one \
             crate the same way.",
        );
        report.table(&self.artifacts);
        report.heading(3, "Container images");
        match &self.images {
            Some(table) => {
                report.para(&self.images_note);
                report.table(table);
            }
            None => report.para(&format!("Not measured in this run: {}", self.images_note)),
        }
    }
}

/// Raw and `gzip -9` sizes; panics if the file is missing (the build failed).
fn size(path: &Path) -> (u64, u64) {
    let raw = std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e} (scripts/bench builds it)", path.display()))
        .len();
    // From stdin, as scripts/size measures: no file name in the header.
    let input = std::fs::File::open(path).expect("open for gzip");
    let gzip = Command::new("gzip")
        .arg("-9n")
        .stdin(input)
        .output()
        .expect("run gzip");
    assert!(gzip.status.success(), "gzip -9 {} failed", path.display());
    (raw, gzip.stdout.len() as u64)
}

/// Whether a component answers `weft status` as a wasip2 build.
fn runs_status(bench: &Bench, component: &Path) -> bool {
    let home = bench.scratch().join("status-check");
    std::fs::create_dir_all(&home).expect("create a home");
    let (_, output) = bench
        .wasm(component, Wasm::Cached, &home)
        .arg("status")
        .once();
    let status: serde_json::Value =
        serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null);
    let ok = output.status.success() && status["platform"] == "wasm32-wasip2";
    if !ok {
        eprintln!(
            "bench: {} status: exit {}, stdout {:?}, stderr {:?}",
            component.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    ok
}

/// The image sizes `scripts/images --sizes-file` wrote, or why there are none.
fn images(bench: &Bench) -> (Option<Table>, String) {
    let Ok(text) = std::fs::read_to_string(bench.built("images.tsv")) else {
        let why = std::fs::read_to_string(bench.built("images-skipped.txt"))
            .unwrap_or_else(|_| "no sizes were recorded.".into());
        return (None, why.trim().to_owned());
    };
    let mut table = Table::new(&[
        "image",
        ">pulled (manifest + config + gzip layers)",
        ">docker-archive (uncompressed)",
        ">unpacked rootfs",
    ]);
    for line in text.lines() {
        let cells: Vec<&str> = line.split('\t').collect();
        if let [platform, pulled, archive, unpacked] = cells[..] {
            let n = |s: &str| thousands(s.trim().parse().unwrap_or(0));
            table.row(vec![
                format!("`{platform}`"),
                n(pulled),
                n(archive),
                n(unpacked),
            ]);
        }
    }
    let note = "Built, pushed to a registry on 127.0.0.1, pulled back and run by \
                `bash scripts/images`; bytes."
        .to_owned();
    (Some(table), note)
}
