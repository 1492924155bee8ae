# A stand-in for `import nixpkgs { system; overlays; }`: the package sets
# and packages the flake uses, each a stand-in derivation that lists the
# programs the real package provides (only those the report looks for).
# nixpkgs' own wasmtime and the archived nixpkgs-fmt throw: the flake must
# not use them.
{
  system,
  overlays ? [ ],
}:
let
  lib = import ./lib.nix;
  drv = import ./derivation.nix;
  hostArch = builtins.head (builtins.split "-" system);

  # One package set: its platform, a C compiler and rust-overlay's rust-bin.
  packageSet =
    setName: arch: libc:
    let
      triple = "${arch}-unknown-linux-${libc}";
    in
    {
      standInName = setName;
      stdenv = {
        hostPlatform = {
          isx86_64 = arch == "x86_64";
          isAarch64 = arch == "aarch64";
          rust = {
            rustcTarget = triple;
            cargoEnvVarTarget = lib.toUpper (builtins.replaceStrings [ "-" ] [ "_" ] triple);
          };
        };
        cc = drv setName "${triple}-cc" [ "${triple}-cc" ] { targetPrefix = "${triple}-"; };
      };
      rust-bin.fromRustupToolchainFile =
        file: drv setName "rust-toolchain" [ "cargo" "rustc" ] { toolchainFile = toString file; };
    };

  host = packageSet "pkgs" hostArch "gnu";
  tool = name: programs: drv "pkgs" name programs { };
in
assert builtins.length overlays == 1;
host
// {
  inherit lib;
  pkgsStatic = packageSet "pkgsStatic" hostArch "musl";
  pkgsCross = {
    musl64.pkgsStatic = packageSet "pkgsCross.musl64.pkgsStatic" "x86_64" "musl";
    aarch64-multiplatform-musl.pkgsStatic =
      packageSet "pkgsCross.aarch64-multiplatform-musl.pkgsStatic" "aarch64"
        "musl";
  };

  util-linux = tool "util-linux" [ "script" ];
  binaryen = tool "binaryen" [ "wasm-opt" ];
  wasm-tools = tool "wasm-tools" [ "wasm-tools" ];
  skopeo = tool "skopeo" [ "skopeo" ];
  umoci = tool "umoci" [ "umoci" ];
  qemu = tool "qemu" [
    "qemu-aarch64"
    "qemu-x86_64"
  ];
  jq = tool "jq" [ "jq" ];
  python3 = tool "python3" [ "python3" ];
  nodejs = tool "nodejs" [
    "node"
    "npm"
  ];
  nixfmt = tool "nixfmt" [ "nixfmt" ];
  nixfmt-tree = tool "nixfmt-tree" [ "treefmt" ];
  deadnix = tool "deadnix" [ "deadnix" ];
  cacert = tool "cacert" [ ];

  wasmtime = throw "nixpkgs' wasmtime is used: the flake's wasmtime is nix/wasmtime.nix";
  nixpkgs-fmt = throw "nixpkgs-fmt is used: the flake formats with nixfmt";

  runCommand =
    name: env: script:
    drv "pkgs" name [ ] (env // { inherit script; });
  writeShellApplication = args: drv "pkgs" args.name [ args.name ] args;
  dockerTools.buildLayeredImage = args: drv "pkgs" "${args.name}-${args.architecture}" [ ] args;
}
