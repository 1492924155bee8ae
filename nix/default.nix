# Everything for one build host: nixpkgs with rust-overlay, crane on the
# repository's toolchain, the source and metadata, and the wiring of the
# other files in this directory (each takes the attributes it needs).
{
  self,
  nixpkgs,
  crane,
  rust-overlay,
  system,
}:
let
  pkgs = import nixpkgs {
    inherit system;
    overlays = [ rust-overlay.overlays.default ];
  };
  inherit (pkgs) lib;

  # crane for a package set: the host's, or a cross one for the static
  # builds. The toolchain is a function of the set it is spliced into, so
  # cross builds get the compiler that runs here; rust-toolchain.toml pins
  # the same Rust (and the four targets) as rustup uses.
  craneFor =
    p:
    (crane.mkLib p).overrideToolchain (p': p'.rust-bin.fromRustupToolchainFile ../rust-toolchain.toml);
  craneLib = craneFor pkgs;

  cargoToml = builtins.fromTOML (builtins.readFile ../Cargo.toml);

  # Exactly what cargo and the tests read: the manifests and lock file, the
  # build script, the Rust sources, the WIT world the library component
  # exports (wit_bindgen reads wit/ at compile time) and all of tests/ (the
  # harness and its certificates, the host programs, and the fixtures,
  # symlinks kept as symlinks, which the unit tests read too). Editing
  # anything else (docs, scripts, examples, benches, fuzz targets, Nix
  # files, the workflows, README) rebuilds nothing.
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../build.rs
      ../src
      ../wit
      ../tests
    ];
  };

  info = {
    inherit (cargoToml.package) version license repository;
    # The commit the flake was evaluated at ("<rev>-dirty" for a dirty tree).
    revision = self.rev or self.dirtyRev or "unknown";
  };

  # The static musl package set for each architecture. The build host's own
  # architecture uses pkgsStatic, whose C toolchain nixpkgs' binary cache is
  # expected to hold (CI builds each architecture on its own runner); the
  # other architecture is a cross build (the same outputs, built from source
  # where the cache lacks the cross toolchain).
  host = pkgs.stdenv.hostPlatform;
  staticSets = {
    x86_64 = if host.isx86_64 then pkgs.pkgsStatic else pkgs.pkgsCross.musl64.pkgsStatic;
    aarch64 =
      if host.isAarch64 then pkgs.pkgsStatic else pkgs.pkgsCross.aarch64-multiplatform-musl.pkgsStatic;
  };
  nativeArch = if host.isx86_64 then "x86_64" else "aarch64";

  # The one wasmtime: the release the tests here are proven with.
  wasmtime = import ./wasmtime.nix { inherit craneLib; };

  built = import ./packages.nix {
    inherit
      pkgs
      lib
      craneLib
      craneFor
      src
      info
      staticSets
      ;
  };
  inherit (built) packages workspace;

  images = import ./images.nix { inherit pkgs info packages; };
  e2e = import ./e2e.nix {
    inherit
      pkgs
      lib
      craneLib
      workspace
      packages
      wasmtime
      ;
  };
  checks = import ./checks.nix {
    inherit
      pkgs
      lib
      craneLib
      src
      info
      workspace
      packages
      wasmtime
      nativeArch
      ;
    e2eRunner = e2e.runner;
  };
in
{
  inherit
    pkgs
    packages
    images
    checks
    wasmtime
    ;
  inherit (e2e) apps;
  shells = import ./shell.nix {
    inherit
      pkgs
      lib
      craneLib
      checks
      wasmtime
      staticSets
      ;
  };
}
