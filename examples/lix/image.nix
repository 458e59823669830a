# A Lix-style image (the shape of Lix's and nixpkgs' "nix" Docker image),
# built from strata's offline package set:
#
#   strata build --pkgs-path testdata/pkgs -f examples/lix/image.nix \
#     --output oci:lix-oci --output docker-archive:lix.tar
#
# Four explicit layer groups come first, in order; each holds its packages'
# closure minus what earlier groups hold:
#
#   1. coreutils              busybox
#   2. curl+libxml2+sqlite    zlib, libbar, libfoo (the stand-ins)
#   3. git                    hello (the stand-in)
#   4. channel                a store path holding a copy of the package set
#
# The rest of the closure (CA certificates, iana-etc, the profile, ...) is
# auto-layered. Then root, nobody and nixbld1..32 with their groups,
# /etc/nix/nix.conf, a default profile with a manifest.nix, the six
# org.opencontainers.image labels and an initialised Nix database that lists
# exactly the image's closure. /tmp and /var/tmp (1777) come with every
# image.
#
# `pkgs` is the package set strata was given (--pkgs-path); without one the
# offline set next to this file is used. Derivations become store paths
# when strata evaluates this file, and strata builds them.
{ pkgs ? import ../../testdata/pkgs { }, version ? "2.90.0-strata" }:
let
  coreutils = pkgs.busybox;
  libs = [ pkgs.zlib pkgs.libbar pkgs.libfoo ];
  git = pkgs.hello;

  # The channel: the package set itself, copied into the store.
  channel = builtins.path { path = ../../testdata/pkgs; name = "strata-pkgs-channel"; };

  installed = [ coreutils git pkgs.cacert pkgs.iana-etc ] ++ libs;

  # A default profile the way nix-env makes one: a store path with bin/
  # links and a manifest.nix describing what is installed.
  manifestEntry = p: ''
    { meta = { description = "${p.meta.description or ""}"; }; name = "${p.name}"; out = { outPath = "${p}"; }; outPath = "${p}"; outputs = [ "out" ]; system = "${p.system}"; type = "derivation"; }
  '';
  profile = pkgs.mkDerivation {
    pname = "user-environment";
    inherit version;
    script = ''
      mkdir -p $out/bin
      for p in ${toString installed}; do
        if [ -d $p/bin ]; then
          for f in $p/bin/*; do ln -sf $f $out/bin/; done
        fi
      done
      cat > $out/manifest.nix <<'STRATA_EOF'
      [
      ${toString (map manifestEntry installed)}
      ]
      STRATA_EOF
    '';
  };

  nixbld = builtins.genList (i: {
    name = "nixbld${toString (i + 1)}";
    uid = 30001 + i;
    gid = 30000;
    home = "/var/empty";
    shell = "/sbin/nologin";
    gecos = "Nix build user ${toString (i + 1)}";
  }) 32;

  labels = {
    "org.opencontainers.image.title" = "lix";
    "org.opencontainers.image.source" = "https://github.com/strata/strata/tree/main/examples/lix";
    "org.opencontainers.image.vendor" = "strata";
    "org.opencontainers.image.version" = version;
    "org.opencontainers.image.description" = "A Lix-style Nix image built by strata from its offline package set";
    "org.opencontainers.image.revision" = "0000000000000000000000000000000000000000";
  };
in
{
  name = "lix";
  packages = [ coreutils git pkgs.cacert pkgs.iana-etc ];
  layers = [
    { name = "coreutils"; packages = [ coreutils ]; }
    { name = "curl+libxml2+sqlite"; packages = libs; }
    { name = "git"; packages = [ git ]; }
    { name = "channel"; packages = [ channel ]; }
  ];
  config = {
    cmd = [ "/bin/sh" ];
    env = {
      USER = "root";
      NIX_PATH = "nixpkgs=/nix/var/nix/profiles/per-user/root/channels/nixpkgs";
      NIX_SSL_CERT_FILE = "/etc/ssl/certs/ca-bundle.crt";
    };
    inherit labels;
  };
  annotations = labels;
  users = [
    { name = "root"; uid = 0; gid = 0; home = "/root"; shell = "/bin/sh"; gecos = "System administrator"; }
    { name = "nobody"; uid = 65534; gid = 65534; home = "/var/empty"; shell = "/sbin/nologin"; gecos = "Unprivileged account"; }
  ] ++ nixbld;
  groups = [
    { name = "root"; gid = 0; }
    { name = "nixbld"; gid = 30000; members = map (u: u.name) nixbld; }
    { name = "nogroup"; gid = 65534; }
  ];
  files = [
    {
      path = "/etc/nix/nix.conf";
      content = ''
        build-users-group = nixbld
        sandbox = false
        substituters =
        experimental-features = nix-command
      '';
    }
    { path = "/nix/var/nix/profiles/default-1-link"; symlink = "${profile}"; }
    { path = "/nix/var/nix/profiles/default"; symlink = "default-1-link"; }
    { path = "/nix/var/nix/profiles/per-user/root/channels/nixpkgs"; symlink = "${channel}"; }
    { path = "/root"; dir = true; mode = "0700"; }
    { path = "/root/.nix-profile"; symlink = "/nix/var/nix/profiles/default"; }
    { path = "/root/.nix-defexpr/channels"; symlink = "/nix/var/nix/profiles/per-user/root/channels"; }
    { path = "/tmp"; dir = true; mode = "1777"; }
    { path = "/var/tmp"; dir = true; mode = "1777"; }
  ];
  # The profile is in the image (its closure is auto-layered) but not
  # merged into /: Packages above are.
  include = [ profile ];
  nixDatabase = true;
}
