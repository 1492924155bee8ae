//! Records the compilation target so `weft status` can name its platform.

fn main() {
    let target = std::env::var("TARGET").expect("cargo always sets TARGET");
    println!("cargo:rustc-env=CLAWFT_TARGET={target}");
    println!("cargo:rerun-if-changed=build.rs");
}
