# The container images, one per architecture, each holding the static weft
# for its own architecture whatever the build host. One layer, no store
# paths: /bin/weft, the CA certificates, passwd/group for the non-root user,
# /config (the volume, CLAWFT_HOME) and /tmp. The default command serves the
# gateway on port 8080.
#
# scripts/images builds the same images with umoci (and scripts/oci-index
# merges either kind into one index); keep the two in step.
{
  pkgs,
  info,
  packages,
}:
let
  uid = 65532;
  gid = 65532;
  certs = "/etc/ssl/certs/ca-certificates.crt";

  image =
    { architecture, weft }:
    pkgs.dockerTools.buildLayeredImage {
      name = "clawft";
      tag = info.version;
      inherit architecture;

      # A plain tar. skopeo then reads the archive in place: current
      # containers/image first decompresses a gzipped one into a temporary
      # copy, and older skopeo (Debian 12's 1.9.3, measured) fails on it
      # ("loading tar component manifest.json: unexpected EOF"). Nothing is
      # lost: scripts/oci-index gzips the layers on their way into the OCI
      # layout, so registries receive compressed layers either way.
      compressor = "none";

      # Files are copied in, not linked to the store, so the image holds
      # exactly what is listed above.
      extraCommands = ''
        mkdir -p bin etc/ssl/certs config tmp
        install -m 0755 ${weft}/bin/weft bin/weft
        install -m 0644 ${pkgs.cacert}/etc/ssl/certs/ca-no-trust-rules-bundle.crt .${certs}
        printf 'root:x:0:0:root:/:/bin/weft\nweft:x:${toString uid}:${toString gid}:clawft:/config:/bin/weft\n' > etc/passwd
        printf 'root:x:0:\nweft:x:${toString gid}:\n' > etc/group
        chmod 0644 etc/passwd etc/group
        chmod 0700 config
        chmod 1777 tmp
      '';
      fakeRootCommands = ''
        chown ${toString uid}:${toString gid} config
      '';

      config = {
        Entrypoint = [ "/bin/weft" ];
        # By default the image serves the OpenAI-compatible gateway; any
        # other command replaces this (`docker run IMAGE agent -m hi`).
        Cmd = [
          "gateway"
          "--listen"
          "0.0.0.0:8080"
        ];
        ExposedPorts = {
          "8080/tcp" = { };
        };
        User = "${toString uid}:${toString gid}";
        WorkingDir = "/config";
        Env = [
          "CLAWFT_HOME=/config"
          # weft has the Mozilla roots built in; this makes it use the
          # image's bundle instead, which users can replace with a mount.
          "SSL_CERT_FILE=${certs}"
        ];
        Volumes = {
          "/config" = { };
        };
        Labels = {
          "org.opencontainers.image.title" = "clawft";
          "org.opencontainers.image.source" = info.repository;
          "org.opencontainers.image.version" = info.version;
          "org.opencontainers.image.revision" = info.revision;
          "org.opencontainers.image.licenses" = info.license;
        };
      };
    };
in
{
  oci-amd64 = image {
    architecture = "amd64";
    weft = packages.weft-x86_64-musl;
  };
  oci-arm64 = image {
    architecture = "arm64";
    weft = packages.weft-aarch64-musl;
  };
}
