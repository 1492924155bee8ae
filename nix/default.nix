# Everything for one build host: nixpkgs with rust-overlay, crane on the
# repository's toolchain, the source and metadata, and the wiring of the
# other files in this directory (each takes the attributes it needs).
{ self
, nixpkgs
, crane
, rust-overlay
, system
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
  craneFor = p: (crane.mkLib p).overrideToolchain
    (p': p'.rust-bin.fromRustupToolchainFile ../rust-toolchain.toml);
  craneLib = craneFor pkgs;

  cargoToml = builtins.fromTOML (builtins.readFile ../Cargo.toml);

  # Rust sources and manifests (.rs, .toml, Cargo.lock), plus all of tests/
  # (fixtures with symlinks, kept as symlinks; the harness's certificates).
  # Not fuzz/, which the workspace excludes. Editing docs, scripts, fuzz
  # targets or Nix files rebuilds nothing.
  under = dir: path: lib.hasPrefix "${toString dir}/" (toString path);
  src = lib.cleanSourceWith {
    src = lib.cleanSource ../.;
    name = "clawft-source";
    filter = path: type:
      !(under ../fuzz path || toString path == toString ../fuzz)
      && (craneLib.filterCargoSources path type || under ../tests path);
  };

  info = {
    inherit (cargoToml.package) version license repository;
    # The commit the flake was evaluated at ("<rev>-dirty" for a dirty tree).
    revision = self.rev or self.dirtyRev or "unknown";
  };

  built = import ./packages.nix { inherit pkgs lib craneLib craneFor src info; };
  inherit (built) packages workspace;

  images = import ./images.nix { inherit pkgs info packages; };
  e2e = import ./e2e.nix { inherit pkgs lib craneLib workspace packages; };
  checks = import ./checks.nix {
    inherit pkgs craneLib src workspace packages;
    e2eRunner = e2e.runner;
  };
in
{
  inherit pkgs packages images checks;
  inherit (e2e) apps;
  shell = import ./shell.nix { inherit pkgs lib craneLib checks; };
}
