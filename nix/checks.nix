# `nix flake check`: lints (native and both wasm targets, as scripts/test
# runs them), formatting, the test suite pointed at the Nix-built artifacts,
# the library's unit tests inside wasmtime on both WASI targets, and the wasm
# end-to-end run.
#
# Every check that runs a test gets each program and artifact the tests call
# at run time (scripts/check-nix proves it by evaluating these files against
# stand-ins):
#   - util-linux `script`: the pseudo-terminal tests (native and wasip2);
#   - wasmtime: the 48.0.8 build from nix/wasmtime.nix, through $WASMTIME
#     and on PATH for the cargo runner of the wasm unit tests;
#   - the three wasip2 components and the wasip1 module (clawft-wasm,
#     clawft-wasm-p1), through the variables the harness reads;
#   - the static binary of this host's architecture, run natively;
#   - `sh` and `kill` come with every build (stdenv's bash and coreutils).
#
# What runs elsewhere, on purpose (each skipped by name, with a message):
#   - the static binary of the other architecture: checks.<that system>.test
#     runs it natively, so neither system cross-builds a musl toolchain for
#     its checks (the harness would run it under qemu; `nix build
#     .#weft-<arch>-musl` still cross-builds it when asked);
#   - the tests that drive weft from PyPI or npm packages (hostTests below):
#     a Nix build has no network to install them, so CI's `host-tests` job
#     runs their test files whole outside the sandbox, in `nix develop
#     .#host-tests` after scripts/setup-hosts (.github/workflows/ci.yml).
{
  pkgs,
  lib,
  craneLib,
  src,
  info,
  workspace,
  packages,
  wasmtime,
  nativeArch,
  e2eRunner,
}:
let
  otherArch = if nativeArch == "x86_64" then "aarch64" else "x86_64";

  # Per test file, the tests that need the hosts scripts/setup-hosts
  # installs (the Python venv with wasmtime and openai, jco and
  # preview2-shim): cargo's --skip patterns. The rest of each file runs
  # here (the wasmtime CLI hosts, the gateway natively and under wasmtime
  # serve with a raw client).
  hostTests = {
    embedding = [
      "python_"
      "node_"
      "js_example"
      "jco_run_"
    ];
    gateway = [ "official_sdk_" ];
  };
  hostSkips = lib.concatLists (builtins.attrValues hostTests);
  hostTestsNamed = lib.concatStringsSep "; " (
    lib.mapAttrsToList (file: skips: "tests/${file}.rs: ${toString skips}") hostTests
  );

  # clippy on the product for a wasm target (the code behind its cfg gates),
  # starting from that target's dependency build.
  clippyWasm =
    target: package: features:
    craneLib.cargoClippy {
      inherit src;
      inherit (info) version;
      pname = "clawft-${target}";
      strictDeps = true;
      inherit (package) cargoArtifacts;
      CARGO_BUILD_TARGET = target;
      cargoExtraArgs = "--locked -p clawft${features}";
      cargoClippyExtraArgs = "-- -D warnings";
    };

  # The library's unit and property tests compiled for a WASI target and run
  # by cargo inside wasmtime, as scripts/test does: the preopened build
  # directory holds the fixtures and a temporary directory for std::fs.
  wasmUnitTests =
    target:
    let
      args = {
        inherit src;
        inherit (info) version;
        pname = "clawft-unit-${target}";
        strictDeps = true;
        CARGO_BUILD_TARGET = target;
        # cargo's test profile, as in scripts/test (crane defaults to release).
        CARGO_PROFILE = "";
        cargoExtraArgs = "--locked -p clawft";
      };
      runnerVar = "CARGO_TARGET_${lib.toUpper (builtins.replaceStrings [ "-" ] [ "_" ] target)}_RUNNER";
    in
    craneLib.cargoTest (
      args
      // {
        # Dependencies with the dev-dependencies, built once per target.
        cargoArtifacts = craneLib.buildDepsOnly args;
        cargoTestExtraArgs = "--lib";
        nativeBuildInputs = [ wasmtime ];
        # The wasip2 test binary imports wasi:http, so it needs -S http.
        preCheck = ''
          export HOME=$(mktemp -d)
          mkdir -p "$PWD/target/wasi-tmp"
          export ${runnerVar}="wasmtime run ${
            if target == "wasm32-wasip2" then "-S http " else ""
          }--dir $PWD::$PWD --env TMPDIR=$PWD/target/wasi-tmp"
        '';
      }
    );
in
{
  # with cargoExtraArgs: cargo clippy --locked --workspace --all-targets -- -D warnings
  clippy = craneLib.cargoClippy (
    workspace.args
    // {
      inherit (workspace) cargoArtifacts;
      cargoClippyExtraArgs = "--all-targets -- -D warnings";
    }
  );
  # wasip2 with the `component` feature: the library and all three
  # component bins (scripts/test's two wasip2 runs in one).
  clippy-wasip2 = clippyWasm "wasm32-wasip2" packages.clawft-wasm.unoptimized " --features component";
  clippy-wasip1 = clippyWasm "wasm32-wasip1" packages.clawft-wasm-p1 "";

  fmt = craneLib.cargoFmt {
    inherit src;
    pname = "clawft";
    inherit (info) version;
    cargoExtraArgs = "--all";
  };

  # cargo test --locked --workspace (cargoExtraArgs): the native binary, and
  # every build that ships through the variables the harness reads.
  test = craneLib.cargoTest (
    workspace.args
    // {
      inherit (workspace) cargoArtifacts;
      nativeBuildInputs = [ pkgs.util-linux ];
      CLAWFT_WASIP2 = "${packages.clawft-wasm}/weft.wasm";
      CLAWFT_AGENT_WASM = "${packages.clawft-wasm}/clawft-agent.wasm";
      CLAWFT_GATEWAY_WASM = "${packages.clawft-wasm}/weft-gateway.wasm";
      CLAWFT_WASIP1 = "${packages.clawft-wasm-p1}/weft.wasm";
      WASMTIME = lib.getExe wasmtime;
      "CLAWFT_WEFT_${lib.toUpper nativeArch}" = lib.getExe packages."weft-${nativeArch}-musl";
      # tests/static_musl.rs names its tests <arch>_musl_...; the other
      # architecture's binary is tested by that system's check, the host
      # tests by CI's host-tests job (see above).
      cargoTestExtraArgs =
        "-- --skip ${otherArch}_musl_ " + lib.concatMapStringsSep " " (p: "--skip ${p}") hostSkips;
      preCheck = ''
        echo "checks.test: the ${otherArch} static binary is tested natively by checks.${otherArch}-linux.test; skipping ${otherArch}_musl_* here"
        echo "checks.test: skipping the tests that need PyPI/npm hosts (${hostTestsNamed}); CI's host-tests job runs those files outside the sandbox"
        # wasmtime keeps its compile cache under $HOME.
        export HOME=$(mktemp -d)
      '';
      passthru = { inherit hostTests; };
    }
  );

  unit-wasip1 = wasmUnitTests "wasm32-wasip1";
  unit-wasip2 = wasmUnitTests "wasm32-wasip2";

  # The same run as `nix run .#e2e-wasmtime`, inside the sandbox (loopback
  # networking is available there).
  e2e-wasmtime = pkgs.runCommand "clawft-e2e-wasmtime" { nativeBuildInputs = [ e2eRunner ]; } ''
    export HOME=$(mktemp -d)
    e2e-wasmtime > $out
    cat $out
  '';
}
