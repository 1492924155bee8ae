# A stand-in for crane: `mkLib pkgs`, `overrideToolchain`, and each builder
# the flake calls, returning stand-in derivations that keep their
# arguments. A package built without cargoArtifacts gets its dependency
# build as crane does (unless cargoArtifacts is null).
let
  drv = import ./derivation.nix;
  craneFor =
    pkgs: toolchain:
    let
      builder =
        kind: args:
        drv pkgs.standInName "${args.pname or "clawft"}-${kind}"
          (if args ? meta.mainProgram then [ args.meta.mainProgram ] else [ ])
          (
            args
            // {
              standInBuilder = kind;
              inherit toolchain;
            }
          );
      self = {
        overrideToolchain = f: craneFor pkgs (f pkgs);
        buildDepsOnly = builder "deps";
        buildPackage =
          args:
          builder "package" (
            {
              cargoArtifacts = self.buildDepsOnly args;
            }
            // args
          );
        cargoClippy = builder "clippy";
        cargoFmt = builder "fmt";
        cargoTest = builder "test";
        devShell = args: drv pkgs.standInName "shell" [ ] (args // { standInBuilder = "devShell"; });
      };
    in
    self;
in
{
  mkLib = pkgs: craneFor pkgs null;
}
