{
  description = "clawft: a small, portable LLM agent (weft) for WASI 0.2, WASI 0.1 and static Linux";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";
    crane.url = "github:ipetkov/crane";
    rust-overlay = {
      url = "github:oxalica/rust-overlay";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  # The contents. Every package builds on both build hosts (the static
  # binary and image of the other architecture are cross-built); the checks
  # of each host test that host's own static binary natively. The logic
  # lives in nix/, one concern per file:
  #
  #   nix/default.nix   nixpkgs + rust-overlay, crane on rust-toolchain.toml,
  #                     the source, and the wiring of the files below
  #   nix/packages.nix  clawft-wasm, clawft-wasm-p1, weft-x86_64-musl,
  #                     weft-aarch64-musl, default (native weft)
  #   nix/wasmtime.nix  wasmtime 48.0.8, the runtime the tests are proven with
  #   nix/images.nix    oci-amd64, oci-arm64 (docker-archives for skopeo;
  #                     scripts/oci-index merges them into one index)
  #   nix/e2e.nix       apps.e2e-wasmtime
  #   nix/checks.nix    clippy, rustfmt, the test suite, the wasm unit tests,
  #                     the wasm end-to-end run
  #   nix/shell.nix     devShells.default, devShells.host-tests
  #   nix/stand-ins/    not part of the flake: stand-in inputs with which
  #                     scripts/check-nix evaluates it without nixpkgs
  outputs =
    {
      self,
      nixpkgs,
      crane,
      rust-overlay,
    }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      perSystem = nixpkgs.lib.genAttrs systems (
        system:
        import ./nix {
          inherit
            self
            nixpkgs
            crane
            rust-overlay
            system
            ;
        }
      );
      each = f: builtins.mapAttrs (_system: f) perSystem;
    in
    {
      # nix build .#clawft-wasm | .#clawft-wasm-p1 | .#weft-x86_64-musl
      #   | .#weft-aarch64-musl | .#oci-amd64 | .#oci-arm64 | .#wasmtime
      #   | . (native weft)
      packages = each (s: s.packages // s.images // { inherit (s) wasmtime; });

      # nix run .#e2e-wasmtime
      apps = each (s: s.apps);

      # nix flake check
      checks = each (s: s.checks);

      # nix develop | nix develop .#host-tests
      devShells = each (s: s.shells);

      # nix fmt: nixfmt (RFC 166 style) on every .nix file, through treefmt
      formatter = each (s: s.pkgs.nixfmt-tree);
    };
}
