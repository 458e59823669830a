# The offline package set of strata's tests and demo.
#
# Shaped like nixpkgs: a function of the build system and an optional cross
# (host) system returning an attribute set of derivations with pname,
# version and meta, nested sets such as python3Packages, and a few helper
# attributes that are not derivations. Every derivation builds offline in
# the Nix sandbox from a static busybox that lives outside the repository
# (see the busybox* arguments); outputs are deterministic, so store paths
# and NAR hashes are the same on every machine with the same busybox.
#
#   nix-build testdata/pkgs -A hello
#   nix-build testdata/pkgs -A hello --argstr crossSystem aarch64-linux
{ system ? builtins.currentSystem
  # The platform whose binaries the packages hold: null (native), a system
  # string such as "aarch64-linux", or an attribute set with `system`.
, crossSystem ? null
  # Static busybox binaries: the amd64 one also runs every builder.
, busyboxAmd64 ? /bin/busybox
, busyboxArm64 ? /opt/strata/busybox-arm64/bin/busybox
  # Mixed into slowBuild only, so a test can start a build nobody shares.
, salt ? ""
, ...
}:

let
  hostSystem =
    if crossSystem == null then system
    else if builtins.isString crossSystem then crossSystem
    else crossSystem.system or crossSystem.config;

  # The directory that holds `file`. Debian merges /bin into /usr/bin with a
  # symlink, and builtins.path would import the symlink, not the directory.
  realDir = file:
    let
      s = toString file;
      usr = /usr + s;
    in
    if builtins.substring 0 5 s == "/bin/" && builtins.pathExists usr
    then dirOf usr else dirOf file;

  # A store directory holding one file named `busybox`: busybox picks its
  # applet from argv[0], so the builder must be called .../busybox.
  importBusybox = sys: file: builtins.path {
    name = "busybox-static-${sys}";
    path = realDir file;
    filter = p: t: baseNameOf p == "busybox";
  };

  busyboxFor = sys:
    if sys == "x86_64-linux" then importBusybox sys busyboxAmd64
    else if sys == "aarch64-linux" then importBusybox sys busyboxArm64
    else throw "strata test package set: no busybox for system ${sys}";

  buildBusybox = busyboxFor system; # runs the builders
  hostBusybox = busyboxFor hostSystem; # copied into the outputs

  # Shell functions every builder can use.
  #
  # noise SEED RANDOM_KB TEXT_KB: a deterministic block of pseudo-random
  #   bytes (awk's seeded generator) followed by pseudo-random words.
  # spread FILE FIRST COUNT: COUNT copies of FILE, each with its bytes
  #   rotated by a different amount (FIRST, FIRST+1, ...), so no two copies
  #   share a byte string and compressors find no long matches; each copy
  #   compresses exactly as well as FILE.
  prelude = ''
    set -eu
    ${buildBusybox}/busybox mkdir -p "$TMPDIR/.bin"
    ${buildBusybox}/busybox --install -s "$TMPDIR/.bin"
    export PATH="$TMPDIR/.bin"
    noise() {
      awk -v seed="$1" -v nr="$2" -v nt="$3" 'BEGIN {
        srand(seed)
        for (i = 0; i < nr * 1024; i++) printf "%c", 1 + int(rand() * 255)
        nw = split("the of and to in is for on that with as by from at nix store path layer image build closure package version system library module config error value state data index table object stream buffer cache merge commit", w, " ")
        n = 0
        while (n < nt * 1024) {
          s = w[1 + int(rand() * nw)] (rand() < 0.3 ? " " int(rand() * 100000) : "") (rand() < 0.1 ? "\n" : " ")
          printf "%s", s
          n += length(s)
        }
      }'
    }
    spread() {
      k=$2
      i=0
      while [ "$i" -lt "$3" ]; do
        r=$(( k % 255 + 1 ))
        tr '\000-\377' "$(printf '\\%03o' "$r")-\\377\\000-$(printf '\\%03o' $(( r - 1 )))" < "$1"
        i=$(( i + 1 ))
        k=$(( k + 1 ))
      done
    }
  '';

  licenses = {
    mit = { spdxId = "MIT"; shortName = "mit"; fullName = "MIT License"; free = true; };
    gpl2Only = { spdxId = "GPL-2.0-only"; shortName = "gpl2Only"; fullName = "GNU General Public License v2.0 only"; free = true; };
    gpl3Plus = { spdxId = "GPL-3.0-or-later"; shortName = "gpl3Plus"; fullName = "GNU General Public License v3.0 or later"; free = true; };
    lgpl21Plus = { spdxId = "LGPL-2.1-or-later"; shortName = "lgpl21Plus"; fullName = "GNU Lesser General Public License v2.1 or later"; free = true; };
    bsd3 = { spdxId = "BSD-3-Clause"; shortName = "bsd3"; fullName = "BSD 3-clause \"New\" or \"Revised\" License"; free = true; };
    asl20 = { spdxId = "Apache-2.0"; shortName = "asl20"; fullName = "Apache License 2.0"; free = true; };
    mpl20 = { spdxId = "MPL-2.0"; shortName = "mpl20"; fullName = "Mozilla Public License 2.0"; free = true; };
    psfl = { spdxId = "Python-2.0"; shortName = "psfl"; fullName = "Python Software Foundation License version 2"; free = true; };
    zlib = { spdxId = "Zlib"; shortName = "zlib"; fullName = "zlib License"; free = true; };
    unfree = { shortName = "unfree"; fullName = "Unfree"; free = false; redistributable = false; };
  };

  # mkDerivation { pname, version, script, meta ? {}, passthru ? {} }:
  # a derivation built by `busybox sh -c (prelude + script)`.
  mkDerivation = { pname, version, script, meta ? { }, passthru ? { } }:
    let
      drv = derivation {
        name = "${pname}-${version}";
        inherit system pname version;
        builder = "${buildBusybox}/busybox";
        args = [ "sh" "-c" (prelude + script) ];
      };
    in
    drv // {
      meta = {
        description = "${pname} (strata test package)";
        homepage = "https://example.org/strata/${pname}";
        license = licenses.mit;
        platforms = [ "x86_64-linux" "aarch64-linux" ];
      } // meta;
    } // passthru;

  # A package whose out/bin/NAME is a busybox shell script.
  script = { pname, version, bin ? pname, text, deps ? [ ], meta ? { } }:
    mkDerivation {
      inherit pname version meta;
      script = ''
        mkdir -p $out/bin $out/nix-support
        {
          printf '#!%s/bin/sh\n' ${busybox}
          cat <<'STRATA_EOF'
        ${text}
        STRATA_EOF
        } > $out/bin/${bin}
        chmod 0755 $out/bin/${bin}
        echo ${toString deps} > $out/nix-support/propagated-build-inputs
      '';
    };

  busybox = mkDerivation {
    pname = "busybox";
    version = "1.35.0";
    script = ''
      mkdir -p $out/bin
      cp ${hostBusybox}/busybox $out/bin/busybox
      chmod 0555 $out/bin/busybox
      for a in $(busybox --list); do
        [ "$a" = busybox ] || ln -s busybox "$out/bin/$a"
      done
    '';
    meta = {
      description = "Tiny versions of common UNIX utilities in a single small executable";
      homepage = "https://busybox.net/";
      license = licenses.gpl2Only;
      mainProgram = "busybox";
    };
  };

  # A synthetic shared library of about SIZE_MB MiB of incompressible
  # pseudo-random bytes, with a .pc file that refers to its dependencies.
  library = { pname, version, seed, sizeMB, soname ? pname, deps ? [ ], meta ? { } }:
    mkDerivation {
      inherit pname version;
      script = ''
        mkdir -p $out/lib/pkgconfig $out/include $out/share/doc/${pname}
        noise ${toString seed} 256 0 > $TMPDIR/base
        spread $TMPDIR/base ${toString seed} ${toString (sizeMB * 4)} > $out/lib/${soname}.so.${version}
        ln -s ${soname}.so.${version} $out/lib/${soname}.so
        noise ${toString (seed + 1)} 0 16 > $out/share/doc/${pname}/README
        printf '#define %s_VERSION "%s"\n' ${pname} ${version} > $out/include/${pname}.h
        {
          echo "prefix=$out"
          echo "libdir=$out/lib"
          echo "Name: ${pname}"
          echo "Version: ${version}"
          echo "Requires: ${toString (map (d: d.pname) deps)}"
          for d in ${toString deps}; do echo "Libs.private: -L$d/lib"; done
        } > $out/lib/pkgconfig/${pname}.pc
      '';
      meta = { license = licenses.lgpl21Plus; } // meta;
    };

  glibc = library {
    pname = "glibc";
    version = "2.37";
    soname = "libc";
    seed = 1000;
    sizeMB = 6;
    meta = { description = "The GNU C Library (synthetic)"; homepage = "https://www.gnu.org/software/libc/"; };
  };
  zlib = library {
    pname = "zlib";
    version = "1.3";
    soname = "libz";
    seed = 2000;
    sizeMB = 1;
    deps = [ glibc ];
    meta = { description = "Lossless data-compression library (synthetic)"; license = licenses.zlib; homepage = "https://zlib.net/"; };
  };
  libbar = library {
    pname = "libbar";
    version = "2.4.1";
    seed = 3000;
    sizeMB = 4;
    deps = [ glibc zlib ];
    meta.description = "Synthetic library in the middle of the library stack";
  };
  libfoo = library {
    pname = "libfoo";
    version = "1.9.0";
    seed = 4000;
    sizeMB = 3;
    deps = [ libbar glibc ];
    meta.description = "Synthetic library on top of libbar";
  };
  bigapp = mkDerivation {
    pname = "bigapp";
    version = "3.1.4";
    script = ''
      mkdir -p $out/bin $out/share/bigapp
      noise 5000 256 256 > $TMPDIR/base
      spread $TMPDIR/base 5000 4 > $out/share/bigapp/data.bin
      {
        printf '#!%s/bin/sh\n' ${busybox}
        echo "# links: ${libfoo}/lib/libfoo.so ${libbar}/lib/libbar.so ${glibc}/lib/libc.so"
        echo 'echo "bigapp 3.1.4"'
      } > $out/bin/bigapp
      chmod 0755 $out/bin/bigapp
    '';
    meta = {
      description = "Synthetic application on the libfoo/libbar/glibc stack";
      license = licenses.asl20;
      mainProgram = "bigapp";
    };
  };

  python3 = mkDerivation {
    pname = "python3";
    version = "3.11.6";
    script = ''
      mkdir -p $out/bin $out/lib/python3.11
      {
        printf '#!%s/bin/sh\n' ${busybox}
        echo 'echo "Python 3.11.6 (strata test stub)"'
      } > $out/bin/python3
      chmod 0755 $out/bin/python3
      ln -s python3 $out/bin/python
      noise 6000 0 1024 > $out/lib/python3.11/stdlib.py
      noise 6001 128 0 > $TMPDIR/base
      spread $TMPDIR/base 6001 8 > $out/lib/libpython3.11.so.1.0
      echo ${glibc} > $out/lib/python3.11/LIBC
    '';
    meta = {
      description = "A high-level dynamically-typed programming language (stub)";
      homepage = "https://www.python.org";
      license = licenses.psfl;
      mainProgram = "python3";
    };
  };

  pythonPackage = { pname, version, seed, sizeKB, deps ? [ ], meta ? { } }:
    mkDerivation {
      pname = "python3.11-${pname}";
      inherit version;
      script = ''
        d=$out/lib/python3.11/site-packages/${pname}
        mkdir -p $d $out/nix-support
        echo '__version__ = "${version}"' > $d/__init__.py
        noise ${toString seed} ${toString sizeKB} 64 > $d/_core.so
        echo ${python3} ${toString deps} > $out/nix-support/propagated-build-inputs
      '';
      meta = { license = licenses.bsd3; } // meta;
      passthru = { inherit pname; };
    };

  python3Packages = rec {
    recurseForDerivations = true;
    numpy = pythonPackage {
      pname = "numpy";
      version = "1.26.4";
      seed = 7000;
      sizeKB = 2048;
      meta = { description = "Scientific tools for Python (stub)"; homepage = "https://numpy.org/"; };
    };
    certifi = pythonPackage {
      pname = "certifi";
      version = "2023.11.17";
      seed = 7100;
      sizeKB = 8;
      deps = [ cacert ];
      meta = { description = "Python package for providing Mozilla's CA Bundle (stub)"; license = licenses.mpl20; };
    };
    urllib3 = pythonPackage {
      pname = "urllib3";
      version = "2.0.7";
      seed = 7200;
      sizeKB = 64;
      meta = { description = "Powerful, user-friendly HTTP client for Python (stub)"; license = licenses.mit; };
    };
    requests = pythonPackage {
      pname = "requests";
      version = "2.31.0";
      seed = 7300;
      sizeKB = 96;
      deps = [ urllib3 certifi ];
      meta = { description = "HTTP library for Python (stub)"; license = licenses.asl20; };
    };
  };

  cacert = mkDerivation {
    pname = "nss-cacert";
    version = "3.95";
    script = ''
      mkdir -p $out/etc/ssl/certs
      cp ${./data/ca-bundle.crt} $out/etc/ssl/certs/ca-bundle.crt
      chmod 0444 $out/etc/ssl/certs/ca-bundle.crt
    '';
    meta = {
      description = "A bundle of X.509 certificates of public Certificate Authorities";
      homepage = "https://curl.se/docs/caextract.html";
      license = licenses.mpl20;
    };
  };

  iana-etc = mkDerivation {
    pname = "iana-etc";
    version = "20231117";
    script = ''
      mkdir -p $out/etc
      cp ${./data/protocols} $out/etc/protocols
      cp ${./data/services} $out/etc/services
      chmod 0444 $out/etc/protocols $out/etc/services
    '';
    meta = {
      description = "IANA protocol and port number assignments";
      homepage = "https://www.iana.org/protocols";
      license = licenses.mit;
    };
  };

  # Parts of largeImage: about 17 MiB each, moderately compressible.
  largePart = n: deps: mkDerivation {
    pname = "large-part-${n}";
    version = "1.0";
    script = ''
      mkdir -p $out/share/large $out/nix-support
      seed=$(( 9000 + 1${n} ))
      noise $seed 160 96 > $TMPDIR/base
      spread $TMPDIR/base $seed 68 > $out/share/large/part-${n}.dat
      echo ${toString deps} > $out/nix-support/propagated-build-inputs
    '';
    meta.description = "Synthetic bulk data for packing benchmarks (part ${n})";
  };
  largeParts = rec {
    part01 = largePart "01" [ glibc ];
    part02 = largePart "02" [ part01 ];
    part03 = largePart "03" [ part01 ];
    part04 = largePart "04" [ part02 part03 ];
    part05 = largePart "05" [ glibc ];
    part06 = largePart "06" [ part05 ];
    part07 = largePart "07" [ ];
    part08 = largePart "08" [ part07 ];
    part09 = largePart "09" [ libfoo ];
    part10 = largePart "10" [ part09 ];
    part11 = largePart "11" [ ];
    part12 = largePart "12" [ part11 python3 ];
  };

  largeImage = mkDerivation {
    pname = "large-image";
    version = "1.0";
    script = ''
      mkdir -p $out/bin $out/nix-support
      {
        printf '#!%s/bin/sh\n' ${busybox}
        echo 'echo "large-image: ${toString (builtins.attrValues largeParts)}"'
      } > $out/bin/large-image
      chmod 0755 $out/bin/large-image
      echo ${bigapp} ${python3Packages.numpy} > $out/nix-support/propagated-build-inputs
    '';
    meta = {
      description = "An application whose closure is over 200 MiB, for packing benchmarks";
      mainProgram = "large-image";
    };
  };

  hello = script {
    pname = "hello";
    version = "2.12.1";
    text = ''echo "Hello, world!"'';
    meta = {
      description = "A program that produces a familiar, friendly greeting";
      homepage = "https://www.gnu.org/software/hello/manual/";
      license = licenses.gpl3Plus;
      mainProgram = "hello";
    };
  };

  # nixpkgs' lib.warn: a trace of a red "warning: MSG" line.
  esc = builtins.fromJSON "\"\\u001b\"";
  warn = msg: builtins.trace "${esc}[1;31mwarning: ${msg}${esc}[0m";

  tool = pname: version: extra: script ({
    inherit pname version;
    text = ''echo "${pname} ${version}"'';
  } // extra);

  pkg-config = tool "pkg-config" "0.29.2" { meta.license = licenses.gpl2Only; };
in
{
  inherit busybox hello cacert iana-etc python3 python3Packages glibc zlib libbar libfoo bigapp largeImage largeParts;

  coreutils = busybox;
  big = largeImage;

  # Mixed-case names, and a pair that differs only by case.
  SDL2 = tool "SDL2" "2.28.5" { bin = "sdl2-config"; meta.license = licenses.zlib; };
  gnuMake = tool "gnumake" "4.4.1" { bin = "make"; meta.license = licenses.gpl3Plus; };
  ImageMagick = tool "imagemagick" "7.1.1-21" { bin = "magick"; meta.license = licenses.asl20; };
  imageMagick = tool "imagemagick-compat" "6.9.12-98" { bin = "convert"; meta.license = licenses.asl20; };

  # Failure fixtures.
  unfreeThing = tool "unfree-thing" "1.0" {
    meta = { license = licenses.unfree; description = "A package with an unfree license"; };
  };
  brokenThing = tool "broken-thing" "1.0" {
    meta = { broken = true; description = "A package marked broken"; };
  };
  failingBuild = mkDerivation {
    pname = "failing-build";
    version = "1.0";
    script = ''
      echo "configuring failing-build 1.0"
      echo "checking for a working compiler... no"
      echo "error: this build always fails" >&2
      exit 1
    '';
    meta.description = "A package whose builder exits 1";
  };
  slowBuild = mkDerivation {
    pname = "slow-build";
    version = "1.0";
    script = ''
      echo "slow-build: starting${salt}"
      sleep 600
      echo "slow-build: done" > $out
    '';
    meta.description = "A package whose build takes ten minutes";
  };
  armOnlyFail = mkDerivation {
    pname = "arm-only-fail";
    version = "1.0";
    script = ''
      if [ "${hostSystem}" = aarch64-linux ]; then
        echo "arm-only-fail: aarch64-linux is not supported by this package" >&2
        exit 1
      fi
      mkdir -p $out/share
      echo "built for ${hostSystem}" > $out/share/platform
    '';
    meta.description = "Builds for x86_64-linux, fails for aarch64-linux";
  };

  # Packages of the images that `strata check` compares with the next
  # version of this set (testdata/pkgs-next).
  htop = tool "htop" "3.2.2" { meta.license = licenses.gpl2Only; };
  jq = tool "jq" "1.7" { };
  exa = tool "exa" "0.10.1" { meta.description = "A modern replacement for ls"; };
  telnet = tool "telnet" "2.4" { meta.license = licenses.gpl3Plus; };
  curl = tool "curl" "8.4.0" { meta.license = licenses.mit; };
  mariadb = tool "mariadb" "10.11.6" { bin = "mariadb"; meta.license = licenses.gpl2Only; };
  inherit pkg-config;

  # Aliases as nixpkgs keeps them after a rename or a removal: a throw that
  # names the replacement, a throw that says why the package is gone, and
  # an alias that still evaluates but warns (lib.warn: builtins.trace of a
  # coloured "warning: ..." line).
  mysql = throw "'mysql' has been renamed to/replaced by 'mariadb'"; # Converted to throw 2022-02-22
  oldtool = throw "'oldtool' has been removed from nixpkgs, as it was unmaintained";
  pkgconfig = warn "'pkgconfig' has been renamed to/replaced by 'pkg-config'" pkg-config;

  # Like nixpkgs: the same set cross-compiled, for sources (flakes) that
  # cannot pass crossSystem.
  pkgsCross =
    let
      crossTo = host: import ./. { inherit system busyboxAmd64 busyboxArm64 salt; crossSystem = host; };
    in
    {
      aarch64-multiplatform = crossTo "aarch64-linux";
      gnu64 = crossTo "x86_64-linux";
    };

  # Not derivations: helpers that listing must skip.
  strata = {
    # The packages the `shell` meta-package expands to for this set.
    shell = [ "busybox" ];
  };
  lib = {
    inherit licenses;
    version = "strata-testdata";
  };
  inherit mkDerivation;
  stdenv = { hostPlatform = { system = hostSystem; }; buildPlatform = { inherit system; }; };
}
