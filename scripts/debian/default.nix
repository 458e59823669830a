# A Nix package set of Debian 12 packages, made by scripts/debian-pkgs.sh.
#
# Shaped like strata's offline set (testdata/pkgs): a function of the build
# system and an optional cross (host) system. One Debian package is one
# store path (a dependency cycle, or the packages of a `-merge` such as
# python3's, share one) whose references are its dependencies' store paths.
# Each derivation is built by a static busybox on x86_64-linux, for either
# architecture: it copies the unpacked .deb trees (gen/*.nix names them with
# their NAR hashes) and points the ELF interpreter and RUNPATH of every
# dynamically linked file into the store with Debian's patchelf, which runs
# through Debian's unpatched dynamic loader, so nothing is emulated.
#
#   nix-build DIR -A python3
#   nix-build DIR -A git --argstr crossSystem aarch64-linux
{ system ? builtins.currentSystem
, crossSystem ? null
, busyboxAmd64 ? /bin/busybox
, ...
}:

let
  hostSystem =
    if crossSystem == null then system
    else if builtins.isString crossSystem then crossSystem
    else crossSystem.system or crossSystem.config;

  arch = {
    x86_64-linux = "amd64";
    aarch64-linux = "arm64";
  }.${hostSystem} or (throw "debian package set: no packages for ${hostSystem} (x86_64-linux and aarch64-linux are made)");

  set =
    if builtins.pathExists (./gen + "/${arch}.nix") then import (./gen + "/${arch}.nix")
    else throw "debian package set: ${arch} was not prepared: run scripts/debian-pkgs.sh with it";
  tools = import ./gen/tools.nix;

  # Builders run on x86_64-linux whatever the packages' architecture.
  buildSystem =
    if system == "x86_64-linux" then system
    else throw "debian package set: builds run on x86_64-linux (Debian's amd64 patchelf), not ${system}";

  realDir = file:
    let s = toString file; usr = /usr + s; in
    if builtins.substring 0 5 s == "/bin/" && builtins.pathExists usr then dirOf usr else dirOf file;
  busybox = builtins.path {
    name = "busybox-static-x86_64-linux";
    path = realDir busyboxAmd64;
    filter = p: t: baseNameOf p == "busybox";
  };

  # An unpacked .deb, imported by its NAR hash: Nix reads the tree only
  # when the store does not hold it yet.
  src = s: builtins.path { inherit (s) name path sha256; recursive = true; };

  join = sep: builtins.concatStringsSep sep;

  toolSrcs = map (t: t // { out = src t.src; }) tools.srcs;
  toolLd = builtins.head (builtins.filter (t: t.pkg == tools.ldso.pkg) toolSrcs);
  patchelf = builtins.head (builtins.filter (t: t.pkg == "patchelf") toolSrcs);
  toolLibPath = join ":" (builtins.concatMap (t: map (d: "${t.out}/${d}") t.libDirs) toolSrcs);

  mkDeb = name: g:
    let
      deps = map (d: pkgs.${d}) g.deps;
      self = "$out";
      ldsoOf = if set.ldso.group == name then self else pkgs.${set.ldso.group};
      libDirsOf = p: gg: map (d: "${p}/${d}") gg.libDirs;
      rpath = join ":" (libDirsOf self g ++ builtins.concatMap (d: libDirsOf pkgs.${d} set.groups.${d}) g.deps);
      drv = derivation {
        name = "${g.pname}-${g.storeVersion}";
        pname = g.pname;
        version = g.version;
        system = buildSystem;
        builder = "${busybox}/busybox";
        srcs = map src g.srcs;
        passAsFile = [ "script" ];
        script = ''
          set -eu
          # The applets used, as functions (busybox --install would make
          # hundreds of links in every build).
          for a in chmod cp ln mkdir readlink; do eval "$a() { ${busybox}/busybox $a \"\$@\"; }"; done
          mkdir -p "$out"
          for s in $srcs; do cp -a "$s/." "$out/"; chmod -R u+w "$out"; done
          pe() { ${toolLd.out}/${tools.ldso.path} --library-path ${toolLibPath} ${patchelf.out}/bin/patchelf "$@"; }
          cd "$out"
          # One patchelf call for all the files that get the same edit.
          ${if g.interp == [ ] then "" else ''
          pe --set-interpreter "${ldsoOf}/${set.ldso.path}" --set-rpath "${rpath}" ${join " " g.interp}''}
          ${if g.dynamic == [ ] then "" else ''
          pe --set-rpath "${rpath}" ${join " " g.dynamic}''}
          # Programs' links to programs beside them become absolute store
          # paths: a program that finds its files relative to its own
          # path (python3 → python3.11) then finds them in the store even
          # when the image links the whole bin directory.
          for d in bin sbin; do
            [ -d "$d" ] || continue
            for l in "$d"/*; do
              [ -L "$l" ] || continue
              t=$(readlink "$l")
              case $t in
                /* | */*) ;;
                *) [ -f "$d/$t" ] && ln -sfn "$out/$d/$t" "$l" ;;
              esac
            done
          done
          mkdir -p nix-support
          # Dependencies stay references even when no file names them.
          printf '%s\n' ${join " " deps} > nix-support/debian-depends
          printf '%s\n' ${join " " (map (d: "'${d}'") g.debs)} > nix-support/debian-packages
          printf '%s\n' ${join " " g.purls} > nix-support/strata-purls
          ${if g.env == [ ] then "" else ''printf '%s\n' ${join " " (map (e: "\"${builtins.replaceStrings [ "@out@" ] [ "$out" ] e}\"") g.env)} > nix-support/strata-env''}
        '';
        args = [ "sh" "-c" ". \"$scriptPath\"" ];
      };
    in
    drv // {
      meta = {
        description = g.description;
        homepage = g.homepage;
        platforms = [ hostSystem ];
        # Package URLs of the Debian packages in this store path.
        purls = g.purls;
      };
    };

  pkgs = builtins.mapAttrs mkDeb set.groups;
  byName = builtins.mapAttrs (n: g: pkgs.${g}) set.names;
in
byName // {
  cacert = byName.ca-certificates;
  python3 = byName.python3;

  # Like nixpkgs: the same set for another architecture.
  pkgsCross =
    let crossTo = host: import ./. { inherit system busyboxAmd64; crossSystem = host; };
    in {
      aarch64-multiplatform = crossTo "aarch64-linux";
      gnu64 = crossTo "x86_64-linux";
    };

  strata = {
    # The packages the `shell` meta-package expands to for this set.
    shell = [ "bash" "coreutils" "dash" ];
  };
  lib = { version = "debian-12"; };
}
