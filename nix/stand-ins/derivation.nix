# A stand-in derivation: an attribute set that Nix treats as a derivation
# (it interpolates to its outPath) and that keeps the arguments it was made
# from, so the report can read what a build would get. `set` names the
# package set it belongs to and is part of its path, so a path in an
# environment variable tells which set built it; `programs` lists what it
# would put on PATH.
set: name: programs: attrs:
let
  self =
    attrs
    // {
      type = "derivation";
      inherit name;
      outPath = "/stand-in/${set}/${name}";
      standIn = { inherit set programs; };
      # Like mkDerivation's: the new attributes win, passthru is lifted.
      overrideAttrs =
        f:
        let
          new = f self;
        in
        self // new // (new.passthru or { });
    }
    // (attrs.passthru or { });
in
self
