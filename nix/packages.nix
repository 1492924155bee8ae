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
  # Ship the wasm-opt'ed component and module (see `component` below): it
  # earns its bytes (-14.5% raw, -6.4% gzip -9 against the same build
  # without it; docs/benchmarks.md) and passes the whole test suite.
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
  # Both install $out/weft.wasm, the same pipeline as scripts/build. For
  # wasm32-wasip2 rustc links the component itself (wasm-component-ld ships
  # with the toolchain) unless the optimised variant asks for the core module.
  wasmModule =
    {
      pname,
      target,
      optimize ? false,
    }:
    withDeps craneLib
      (
        product
        // {
          inherit pname;
          CARGO_BUILD_TARGET = target;
        }
      )
      {
        nativeBuildInputs = lib.optional optimize pkgs.binaryen;
        doNotPostBuildInstallCargoBinaries = true;
        installPhaseCommand =
          let
            built = "\${CARGO_TARGET_DIR:-target}/${target}/release/weft.wasm";
          in
          if optimize then
            ''
              mkdir -p $out
              wasm-opt -Oz ${wasmOptFlags} ${built} -o $out/weft.wasm
            ''
          else
            ''
              install -D -m 0644 ${built} $out/weft.wasm
            '';
      };

  # The component, optionally through wasm-opt. wasm-opt cannot read
  # components, so the linker stops at the core module (--skip-wit-component),
  # wasm-opt shrinks that with the features Rust enables, and wasm-tools wraps
  # it into the component.
  component =
    optimize:
    if !optimize then
      wasmModule {
        pname = "clawft-wasm";
        target = "wasm32-wasip2";
      }
    else
      withDeps craneLib
        (
          product
          // {
            pname = "clawft-wasm-opt";
            CARGO_BUILD_TARGET = "wasm32-wasip2";
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
            wasm-opt -Oz ${wasmOptFlags} \
              ''${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release/weft.wasm -o core.wasm
            wasm-tools component new core.wasm -o component.wasm
            wasm-tools strip --all component.wasm -o $out/weft.wasm
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
    # `nix build .#clawft-wasm.optimized` / `.unoptimized` build either
    # variant whatever optimizeComponent says.
    clawft-wasm = (component optimizeComponent).overrideAttrs (old: {
      passthru = (old.passthru or { }) // {
        optimized = component true;
        unoptimized = component false;
      };
    });
    clawft-wasm-p1 = wasmModule {
      pname = "clawft-wasm-p1";
      target = "wasm32-wasip1";
      optimize = true;
    };
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
