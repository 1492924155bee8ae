# The shipped artifacts, built from the `clawft` package only (the workspace
# also holds the test harness). Every cargo target gets one dependency build
# (buildDepsOnly) that its package reuses as cargoArtifacts. Tests do not run
# here: checks.nix runs the suite against these very outputs.
{
  pkgs,
  lib,
  craneLib,
  craneFor,
  src,
  info,
  staticSets,
}:
let
  # Ship the wasm-opt'ed components and module (see `component` below): it
  # earns its bytes (weft.wasm: -14.5% raw, -6.4% gzip -9 against the same
  # build without it; docs/benchmarks.md) and passes the whole test suite.
  optimizeComponent = true;

  # What decides how the code compiles: shared by a target's dependency
  # build and its package build, so the cached dependencies stay valid.
  product = {
    inherit src;
    inherit (info) version;
    strictDeps = true;
    cargoExtraArgs = "--locked -p clawft --bin weft";
    doCheck = false;
  };

  # Dependencies once for `build` (the compile settings), then the package
  # on top of them with `install` (how to build and install the result).
  withDeps =
    crane: build: install:
    crane.buildPackage (
      build
      // install
      // {
        cargoArtifacts = crane.buildDepsOnly build;
      }
    );

  # --- WebAssembly -----------------------------------------------------------
  # The same pipeline as scripts/build. wasm32-wasip2 ships three components,
  # each installed as $out/<bin>.wasm: the command (weft), the library
  # (clawft-agent) and the wasi:http gateway (weft-gateway); the last two
  # need the `component` feature (required-features in Cargo.toml).
  # wasm32-wasip1 ships the command module alone, $out/weft.wasm.
  components = [
    "weft"
    "clawft-agent"
    "weft-gateway"
  ];
  wasip2 = product // {
    CARGO_BUILD_TARGET = "wasm32-wasip2";
    cargoExtraArgs =
      "--locked -p clawft --features component "
      + lib.concatMapStringsSep " " (bin: "--bin ${bin}") components;
  };
  builtWasm = target: "\${CARGO_TARGET_DIR:-target}/${target}/release";

  # The components, optionally through wasm-opt. Unoptimised, rustc links
  # each component itself (wasm-component-ld ships with the toolchain).
  # Optimised: wasm-opt cannot read components, so the linker stops at the
  # core module (--skip-wit-component), wasm-opt shrinks that with the
  # features Rust enables, and wasm-tools wraps it into the component (the
  # library's exported interface travels in a custom section wit-bindgen
  # embeds) and strips it.
  component =
    optimize:
    if !optimize then
      withDeps craneLib (wasip2 // { pname = "clawft-wasm"; }) {
        doNotPostBuildInstallCargoBinaries = true;
        installPhaseCommand = ''
          for name in ${lib.concatStringsSep " " components}; do
            install -D -m 0644 ${builtWasm "wasm32-wasip2"}/$name.wasm $out/$name.wasm
          done
        '';
      }
    else
      withDeps craneLib
        (
          wasip2
          // {
            pname = "clawft-wasm-opt";
            CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS = "-C link-arg=--skip-wit-component";
          }
        )
        {
          nativeBuildInputs = [
            pkgs.binaryen
            pkgs.wasm-tools
          ];
          doNotPostBuildInstallCargoBinaries = true;
          installPhaseCommand = ''
            mkdir -p $out
            for name in ${lib.concatStringsSep " " components}; do
              wasm-opt -Oz ${wasmOptFlags} ${builtWasm "wasm32-wasip2"}/$name.wasm -o $name.core.wasm
              wasm-tools component new $name.core.wasm -o $name.component.wasm
              wasm-tools strip --all $name.component.wasm -o $out/$name.wasm
            done
          '';
        };

  # The wasip1 module, through wasm-opt.
  module =
    withDeps craneLib
      (
        product
        // {
          pname = "clawft-wasm-p1";
          CARGO_BUILD_TARGET = "wasm32-wasip1";
        }
      )
      {
        nativeBuildInputs = [ pkgs.binaryen ];
        doNotPostBuildInstallCargoBinaries = true;
        installPhaseCommand = ''
          mkdir -p $out
          wasm-opt -Oz ${wasmOptFlags} ${builtWasm "wasm32-wasip1"}/weft.wasm -o $out/weft.wasm
        '';
      };

  # The features rustc enables for wasm32, which wasm-opt must be told
  # about, and the sections nobody needs at run time.
  wasmOptFlags = lib.concatStringsSep " " (
    (map (f: "--enable-${f}") [
      "bulk-memory"
      "sign-ext"
      "nontrapping-float-to-int"
      "mutable-globals"
      "multivalue"
      "reference-types"
    ])
    ++ [
      "--strip-debug"
      "--strip-producers"
    ]
  );

  # --- static Linux --------------------------------------------------------------
  # Builds through crane on a static musl package set (see staticSets in
  # default.nix): the set provides the C compiler (ring, under rustls,
  # compiles C) and the linker, and crane sets CARGO_BUILD_TARGET,
  # CC_<target> and CARGO_TARGET_<T>_LINKER from it (plus a qemu runner when
  # this host cannot run the result).
  static =
    staticPkgs:
    let
      rust = staticPkgs.stdenv.hostPlatform.rust;
    in
    withDeps (craneFor staticPkgs) (
      product
      // {
        pname = "weft-${rust.rustcTarget}";
        CARGO_BUILD_TARGET = rust.rustcTarget;
        "CARGO_TARGET_${rust.cargoEnvVarTarget}_RUSTFLAGS" = "-C target-feature=+crt-static";
      }
    ) { meta.mainProgram = "weft"; };

  # --- the workspace, natively --------------------------------------------------
  # One dependency build for the whole workspace, all targets and
  # dev-dependencies included: the native weft, the e2e-wasmtime harness,
  # clippy and the test suite all start from it.
  workspace = rec {
    args = {
      inherit src;
      inherit (info) version;
      pname = "clawft-workspace";
      strictDeps = true;
      cargoExtraArgs = "--locked --workspace";
    };
    cargoArtifacts = craneLib.buildDepsOnly args;
  };
in
{
  inherit workspace;

  packages = {
    # result/weft.wasm, result/clawft-agent.wasm, result/weft-gateway.wasm.
    # `nix build .#clawft-wasm.optimized` / `.unoptimized` build either
    # variant whatever optimizeComponent says.
    clawft-wasm = (component optimizeComponent).overrideAttrs (old: {
      passthru = (old.passthru or { }) // {
        optimized = component true;
        unoptimized = component false;
      };
    });
    clawft-wasm-p1 = module;
    weft-x86_64-musl = static staticSets.x86_64;
    weft-aarch64-musl = static staticSets.aarch64;
    default = craneLib.buildPackage (
      product
      // {
        pname = "weft";
        inherit (workspace) cargoArtifacts;
        meta.mainProgram = "weft";
      }
    );
  };
}
