# The wasmtime CLI the tests are proven with: wasmtime-cli 48.0.8 from its
# crates.io release, built with the crate's own Cargo.lock and default
# features, exactly what `cargo install wasmtime-cli --locked --version
# 48.0.8` (scripts/setup) builds. nixpkgs' wasmtime is another version; the
# checks, the e2e app and the dev shell all use this one instead.
#
# The crate is fetched at evaluation time (builtins.fetchTarball) so crane can
# read its Cargo.lock without import-from-derivation. Two hashes pin it:
#   - crateSha256: the sha256 of the .crate file, as the crates.io index
#     lists it ("cksum"); scripts/check-nix checks it against the index;
#   - narHash: the unpacked tree as Nix stores it, which fetchTarball checks;
#     scripts/check-nix recomputes it from a .crate with that sha256.
{ craneLib }:
let
  version = "48.0.8";
  crateSha256 = "937960a5bea1375aa9378b918f2f22a1dca2da10c32b936db2c3c18f54d33ee6";
  narHash = "sha256-MpmX683IeWb0w+Lua/REg66/gliK42PAegtC8yuGTC4=";

  src = builtins.fetchTarball {
    name = "wasmtime-cli-${version}-source";
    url = "https://static.crates.io/crates/wasmtime-cli/wasmtime-cli-${version}.crate";
    sha256 = narHash;
  };
in
craneLib.buildPackage {
  pname = "wasmtime-cli";
  inherit version src;
  strictDeps = true;
  cargoExtraArgs = "--locked";
  # A tool, not our code: one derivation, no separate dependency build, and
  # no run of wasmtime's own tests (ours prove it).
  cargoArtifacts = null;
  doCheck = false;
  passthru = { inherit crateSha256; };
  meta = {
    description = "wasmtime CLI ${version}, the runtime clawft's wasm tests are proven with";
    mainProgram = "wasmtime";
  };
}
