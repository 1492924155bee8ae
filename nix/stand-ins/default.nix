# Not part of the flake. scripts/check-nix evaluates the flake's outputs
# with these stand-in inputs (Nix 2.8 cannot evaluate nixpkgs itself) and
# prints this report as JSON; scripts/check-nix-tools then proves from it
# that each check gets every program its tests call at run time.
#
# What it shows: the flake's wiring (every output, argument, attribute and
# file name resolves), and what each check, app, shell and image is given.
# What it cannot show: anything about the real nixpkgs and crane (whether a
# package exists in nixos-26.05, what a builder really does): the stand-ins
# only hold what we know of them, and nothing is built.
let
  lib = import ./lib.nix;
  inputs = {
    self = { };
    nixpkgs = {
      inherit lib;
      outPath = ./nixpkgs.nix;
    };
    crane = import ./crane.nix;
    rust-overlay.overlays.default = _final: _prev: { };
  };
  flake = (import ../../flake.nix).outputs inputs;

  isDrv = x: builtins.isAttrs x && x.type or null == "derivation";
  describe = d: {
    path = d.outPath;
    inherit (d.standIn) set programs;
  };
  # The string and path attributes a build gets as environment variables.
  envOf =
    d:
    lib.genAttrs (builtins.filter (
      n: builtins.match "[A-Z][A-Z0-9_]*" n != null && builtins.isString d.${n}
    ) (builtins.attrNames d)) (n: d.${n});
  optionalAttr = d: n: if d ? ${n} then { ${n} = toString d.${n}; } else { };

  check =
    d:
    {
      builder = d.standInBuilder or "runCommand";
      inherit (d.standIn) set;
      env = envOf d;
      inputs = map describe (builtins.filter isDrv (d.nativeBuildInputs or [ ]));
      # What a writeShellApplication among the inputs runs.
      scripts = map (i: i.text) (builtins.filter (i: i ? text) (d.nativeBuildInputs or [ ]));
    }
    // optionalAttr d "preCheck"
    // optionalAttr d "cargoExtraArgs"
    // optionalAttr d "cargoTestExtraArgs"
    // optionalAttr d "script"
    // (if d ? hostTests then { inherit (d) hostTests; } else { });

  # How a package builds and installs (wasm builds also name their variants).
  build = d: {
    cargoExtraArgs = d.cargoExtraArgs or null;
    install = d.installPhaseCommand or null;
    tools = map describe (builtins.filter isDrv (d.nativeBuildInputs or [ ]));
  };

  perSystem = system: {
    checks = builtins.mapAttrs (_: check) flake.checks.${system};
    packages = builtins.mapAttrs (
      _: d:
      describe d
      // build d
      // {
        version = d.version or null;
        config = d.config or null;
        architecture = d.architecture or null;
        extraCommands = d.extraCommands or null;
        variants = builtins.mapAttrs (_: v: describe v // build v) (
          builtins.intersectAttrs {
            optimized = null;
            unoptimized = null;
          } d
        );
      }
    ) flake.packages.${system};
    apps = builtins.mapAttrs (_: a: { inherit (a) program type; }) flake.apps.${system};
    shells = builtins.mapAttrs (_: s: {
      packages = map describe s.packages;
      checks = builtins.attrNames (s.checks or { });
    }) flake.devShells.${system};
    formatter = describe flake.formatter.${system};
    # The files the builds see (the native package's source; all share it).
    source = flake.packages.${system}.default.src.standInSource;
  };
in
lib.genAttrs (builtins.attrNames flake.checks) perSystem
