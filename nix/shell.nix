# `nix develop`: the toolchain from rust-toolchain.toml (all four targets),
# everything the checks build and test with (wasmtime 48.0.8, util-linux),
# the wasm and image tools, python3 and Node.js, and C compilers so plain
# `cargo build --target <arch>-unknown-linux-musl` works for both static
# targets. (scripts/images also wants root and a registry: it is meant for a
# Debian CI machine, see docs/packaging.md.)
#
# `nix develop .#host-tests`: the same without the image tools and the C
# compilers (so no cross toolchain is built): what CI's `host-tests` job
# needs to run the tests that install PyPI and npm packages.
{
  pkgs,
  lib,
  craneLib,
  checks,
  wasmtime,
  staticSets,
}:
let
  # CC and linker for one static musl target, from the same package sets
  # the flake's static builds use.
  muslTools =
    staticPkgs:
    let
      inherit (staticPkgs.stdenv) cc hostPlatform;
      target = hostPlatform.rust.cargoEnvVarTarget;
      tool = "${cc}/bin/${cc.targetPrefix}cc";
    in
    {
      "CC_${lib.toLower target}" = tool;
      "CARGO_TARGET_${target}_LINKER" = tool;
    };

  testTools = [
    wasmtime
    pkgs.util-linux
    pkgs.wasm-tools
    pkgs.binaryen
    pkgs.python3
    pkgs.nodejs
  ];
in
{
  default = craneLib.devShell (
    {
      inherit checks;
      packages = testTools ++ [
        pkgs.skopeo
        pkgs.umoci
        pkgs.qemu
        pkgs.jq
        pkgs.nixfmt
        pkgs.deadnix
      ];
    }
    // muslTools staticSets.x86_64
    // muslTools staticSets.aarch64
  );

  host-tests = craneLib.devShell { packages = testTools; };
}
