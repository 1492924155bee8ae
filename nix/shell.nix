# `nix develop`: the toolchain from rust-toolchain.toml (all four targets),
# everything the checks build with, the wasm and image tools, and C cross
# compilers so plain `cargo build --target <arch>-unknown-linux-musl` works
# for both static targets. (scripts/images also wants root, a registry and
# python3: it is meant for a Debian CI machine, see docs/packaging.md.)
{ pkgs
, lib
, craneLib
, checks
}:
let
  # CC and linker for one static musl target, from the same package sets
  # the flake's static builds use.
  muslTools = crossPkgs:
    let
      inherit (crossPkgs.stdenv) cc hostPlatform;
      target = hostPlatform.rust.cargoEnvVarTarget;
      tool = "${cc}/bin/${cc.targetPrefix}cc";
    in
    {
      "CC_${lib.toLower target}" = tool;
      "CARGO_TARGET_${target}_LINKER" = tool;
    };
in
craneLib.devShell ({
  inherit checks;
  packages = [
    pkgs.wasmtime
    pkgs.wasm-tools
    pkgs.binaryen
    pkgs.skopeo
    pkgs.umoci
    pkgs.qemu
    pkgs.jq
    pkgs.nixpkgs-fmt
    pkgs.deadnix
  ];
}
// muslTools pkgs.pkgsCross.musl64.pkgsStatic
  // muslTools pkgs.pkgsCross.aarch64-multiplatform-musl.pkgsStatic)
