# The few nixpkgs library functions the flake calls, with the same meaning.
let
  inherit (builtins) stringLength substring;
  upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
  lower = "abcdefghijklmnopqrstuvwxyz";
  chars = s: builtins.genList (i: substring i 1 s) (stringLength s);
in
{
  inherit (builtins) concatStringsSep concatLists;
  mapAttrsToList = f: attrs: map (name: f name attrs.${name}) (builtins.attrNames attrs);
  concatMapStringsSep =
    sep: f: list:
    builtins.concatStringsSep sep (map f list);
  genAttrs =
    names: f:
    builtins.listToAttrs (
      map (name: {
        inherit name;
        value = f name;
      }) names
    );
  optional = cond: x: if cond then [ x ] else [ ];
  toLower = builtins.replaceStrings (chars upper) (chars lower);
  toUpper = builtins.replaceStrings (chars lower) (chars upper);
  getExe = drv: "${drv}/bin/${drv.meta.mainProgram or drv.pname or drv.name}";
  # The files are not read: the report only needs the paths chosen.
  fileset = {
    unions = paths: map toString paths;
    toSource =
      { root, fileset }:
      {
        outPath = "/stand-in/source";
        standInSource = {
          root = toString root;
          files = fileset;
        };
      };
  };
}
