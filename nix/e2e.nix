# `nix run .#e2e-wasmtime`: the wasm32-wasip2 component in wasmtime 48.0.8
# (nix/wasmtime.nix), against the harness's provider stand-in on 127.0.0.1,
# checking full turns (config from the preopened /config, the request, the
# reply, the session file).
# The binary comes from the workspace's clawft-harness crate: the same
# scenario code as tests/wasm.rs, not a copy.
{
  pkgs,
  lib,
  craneLib,
  workspace,
  packages,
  wasmtime,
}:
let
  harness = craneLib.buildPackage (
    workspace.args
    // {
      pname = "e2e-wasmtime";
      inherit (workspace) cargoArtifacts;
      cargoExtraArgs = "--locked -p clawft-harness --bin e2e-wasmtime";
      doCheck = false;
    }
  );

  # Later flags win, so `nix run .#e2e-wasmtime -- --wasm other.wasm` tries
  # another component.
  runner = pkgs.writeShellApplication {
    name = "e2e-wasmtime";
    text = ''
      exec ${harness}/bin/e2e-wasmtime \
        --wasm ${packages.clawft-wasm}/weft.wasm \
        --wasmtime ${lib.getExe wasmtime} \
        "$@"
    '';
  };
in
{
  inherit runner;
  apps.e2e-wasmtime = {
    type = "app";
    program = lib.getExe runner;
    meta.description = "Run the wasm32-wasip2 component through full turns in wasmtime against a local provider stand-in";
  };
}
