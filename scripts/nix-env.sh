# Sourced by scripts that run Nix themselves. strata passes these settings
# on its own Nix calls; a script must too, or Nix as Debian's nix-bin leaves
# it (no nix.conf) refuses to build as root: there is no 'nixbld' group and
# no binary cache on strata's machines.
nix_conf="substituters ="
if [ "$(id -u)" = 0 ] && ! getent group nixbld >/dev/null; then
	nix_conf+=$'\nbuild-users-group ='
fi
export NIX_CONFIG="${NIX_CONFIG:+$NIX_CONFIG
}$nix_conf"
unset nix_conf
