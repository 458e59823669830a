# The offline package set after a bump: testdata/pkgs with the changes a
# nixpkgs channel bump brings, for `strata check` and its tests. Everything
# not named here is testdata/pkgs itself (the same derivations, so the same
# store paths).
#
#   strata check --from testdata/pkgs --to testdata/pkgs-next shell/exa/htop/jq/curl/telnet
args@{ ... }:
let
  base = import ../pkgs args;
  inherit (base) mkDerivation;
in
base // {
  # Renamed: the same package under a new attribute, the old name an alias
  # that throws naming the replacement.
  eza = base.exa;
  exa = throw "'exa' has been renamed to/replaced by 'eza'"; # Converted to throw 2023-09-08

  # Removed.
  telnet = throw "'telnet' has been removed from nixpkgs, as it was unmaintained";

  # A new version.
  htop = mkDerivation {
    pname = "htop";
    version = "3.3.0";
    script = ''
      mkdir -p $out/bin
      printf '#!%s/bin/sh\necho "htop 3.3.0"\n' ${base.busybox} > $out/bin/htop
      chmod 0755 $out/bin/htop
    '';
    meta.description = "htop (strata test package, next version)";
  };

  # Newly failing to build: the same version, a builder that now fails.
  jq = mkDerivation {
    pname = "jq";
    version = "1.7";
    script = ''
      echo "jq: tests fail with the new oniguruma" >&2
      exit 1
    '';
  };

  # Newly failing to evaluate: an assertion of the package's expression.
  curl = assert base.lib.version == "openssl-3.2"; base.curl;
}
