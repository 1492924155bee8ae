# `nix flake check`: lints (native and both wasm targets, as scripts/test
# runs them), formatting, the whole test suite pointed at the
# Nix-built artifacts (the wasm builds in Nix's wasmtime, both static
# binaries, the foreign one under qemu), and the wasm end-to-end run.
{ pkgs
, craneLib
, src
, workspace
, packages
, e2eRunner
}:
let
  # The emulator nixpkgs uses for a platform (a plain `exec` when this host
  # runs it natively); the harness only asks for the foreign one.
  emulator = crossPkgs: crossPkgs.stdenv.hostPlatform.emulator pkgs;

  # clippy on the product for a wasm target (the code behind its cfg gates),
  # starting from that target's dependency build.
  clippyWasm = target: package: craneLib.cargoClippy {
    inherit src;
    inherit (workspace.args) version;
    pname = "clawft-${target}";
    strictDeps = true;
    inherit (package) cargoArtifacts;
    CARGO_BUILD_TARGET = target;
    cargoExtraArgs = "--locked -p clawft";
    cargoClippyExtraArgs = "-- -D warnings";
  };
in
{
  # with cargoExtraArgs: cargo clippy --locked --workspace --all-targets -- -D warnings
  clippy = craneLib.cargoClippy (workspace.args // {
    inherit (workspace) cargoArtifacts;
    cargoClippyExtraArgs = "--all-targets -- -D warnings";
  });
  clippy-wasip2 = clippyWasm "wasm32-wasip2" packages.clawft-wasm.unoptimized;
  clippy-wasip1 = clippyWasm "wasm32-wasip1" packages.clawft-wasm-p1;

  fmt = craneLib.cargoFmt {
    inherit src;
    pname = "clawft";
    inherit (workspace.args) version;
    cargoExtraArgs = "--all";
  };

  # cargo test --locked --workspace (cargoExtraArgs): the native binary, and
  # every build that ships through the variables the harness reads.
  test = craneLib.cargoTest (workspace.args // {
    inherit (workspace) cargoArtifacts;
    CLAWFT_WASIP2 = "${packages.clawft-wasm}/weft.wasm";
    CLAWFT_WASIP1 = "${packages.clawft-wasm-p1}/weft.wasm";
    WASMTIME = "${pkgs.wasmtime}/bin/wasmtime";
    CLAWFT_WEFT_X86_64 = "${packages.weft-x86_64-musl}/bin/weft";
    CLAWFT_WEFT_AARCH64 = "${packages.weft-aarch64-musl}/bin/weft";
    CLAWFT_QEMU_X86_64 = emulator pkgs.pkgsCross.musl64;
    CLAWFT_QEMU_AARCH64 = emulator pkgs.pkgsCross.aarch64-multiplatform-musl;
    # wasmtime keeps its compile cache under $HOME.
    preCheck = ''
      export HOME=$(mktemp -d)
    '';
  });

  # The same run as `nix run .#e2e-wasmtime`, inside the sandbox (loopback
  # networking is available there).
  e2e-wasmtime = pkgs.runCommand "clawft-e2e-wasmtime" { } ''
    export HOME=$(mktemp -d)
    ${e2eRunner}/bin/e2e-wasmtime > $out
    cat $out
  '';
}
