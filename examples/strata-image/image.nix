# strata's own container image, built by strata:
#
#   make image        # = make build, then:
#   bin/strata build --pkgs-path testdata/pkgs -f examples/strata-image/image.nix \
#     --output oci:.cache/strata-image --output docker-archive:.cache/strata-image.tar
#
# The image holds the static strata binary (make build links it without
# cgo), a shell and core utilities, and CA certificates, and runs as an
# unprivileged user. It is the publisher's image: push, copy, index and
# publish from prebuilt layouts need nothing else. serve and build also need
# Nix, which a package set with Nix in it provides (add it to packages).
#
# `pkgs` is the package set strata was given (--pkgs-path); `strata` is the
# binary next to the repository's Makefile output.
{ pkgs ? import ../../testdata/pkgs { }, strata ? ../../bin/strata, version ? "dev" }:
let
  binary = builtins.path { path = strata; name = "strata-binary"; };
  strataPkg = pkgs.mkDerivation {
    pname = "strata";
    inherit version;
    script = ''
      mkdir -p $out/bin
      cp ${binary} $out/bin/strata
      chmod 0555 $out/bin/strata
    '';
    meta = {
      description = "Nix packages in, OCI images out";
      license = { spdxId = "Apache-2.0"; free = true; };
    };
  };
  labels = {
    "org.opencontainers.image.title" = "strata";
    "org.opencontainers.image.description" = "Nix packages in, OCI images out: an on-demand registry, an image builder and a publisher";
    "org.opencontainers.image.version" = version;
    "org.opencontainers.image.licenses" = "Apache-2.0";
  };
in
{
  name = "strata";
  packages = [ strataPkg pkgs.busybox pkgs.cacert ];
  layers = [
    { name = "base"; packages = [ pkgs.busybox pkgs.cacert ]; }
    { name = "strata"; packages = [ strataPkg ]; }
  ];
  config = {
    entrypoint = [ "/bin/strata" ];
    cmd = [ "--help" ];
    user = "65532:65532";
    workingDir = "/home/strata";
    inherit labels;
  };
  annotations = labels;
  users = [
    { name = "strata"; uid = 65532; gid = 65532; home = "/home/strata"; shell = "/bin/sh"; gecos = "strata"; }
  ];
  groups = [ { name = "strata"; gid = 65532; } ];
  files = [
    { path = "/home/strata"; dir = true; mode = "0755"; uid = 65532; gid = 65532; }
  ];
}
