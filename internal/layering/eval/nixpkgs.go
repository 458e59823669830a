package eval

import (
	"crypto/sha256"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"strata/internal/closure"
)

// CorpusSeed is the seed of the checked-in corpus testdata/corpus/nixpkgs.json.
const CorpusSeed = 1

// GenerateCorpus builds a synthetic, nixpkgs-like corpus from seed. The
// assumptions, so that measurements on it mean something:
//
//   - Packages and their runtime references follow nixpkgs (x86_64-linux,
//     2024): a shared core (glibc, gcc's runtime libraries, zlib, openssl,
//     ncurses, ...) that almost everything refers to, language runtimes
//     (python3, perl, nodejs, ruby, ...) with their libraries on top, and
//     leaf applications. The table below lists each package with a typical
//     NAR size; the generator draws the actual size log-normally around
//     it (σ = 0.35), which gives heavy-tailed sizes from a few KB to a few
//     hundred MB, as in nixpkgs.
//   - The Jupyter stack gets its many small pure-Python dependencies
//     procedurally (sizes drawn log-normally around 300 KB, each referring
//     to python3 and to two or three earlier ones), so that the Python
//     data-science image has well over 100 paths, as its real closure has.
//   - Store paths are input-addressed, as in Nix: a path's hash is derived
//     from its name, version and the paths it refers to, so updating a
//     package changes the path of everything that depends on it.
//   - Images are typical Nixery requests (shell, shell/git/htop, python3
//     with numpy, ...), 48 in all, from a handful of paths to ~150.
//   - The update scenario bumps six packages (htop, git, numpy, nodejs,
//     libpng, curl): the bumped packages get a new version and a size
//     within ±3 %, their dependents a new hash and the same size.
func GenerateCorpus(seed uint64) *Corpus {
	g := &nixpkgsGen{rng: &splitmix{state: seed}, byName: make(map[string]int), c: &Corpus{Paths: make(map[string]CorpusPath)},
		salt: fmt.Sprintf("strata-corpus-%d", seed)}
	g.table()
	g.jupyter()
	g.dependencyOrder()
	g.drawSizes()
	before := g.emit(func(i int) string { return g.pkgs[i].version }, func(i int) int64 { return g.sizes[i] })
	g.update(before)
	g.images(before)
	if err := g.c.init(); err != nil {
		panic(err)
	}
	return g.c
}

// nixpkgsGen is the state of GenerateCorpus. Its steps draw from rng in a
// fixed order, so the same seed gives the same corpus.
type nixpkgsGen struct {
	rng    *splitmix
	pkgs   []nixpkgsPkg
	byName map[string]int
	// order lists the packages dependencies first.
	order []int
	// sizes are the packages' drawn NAR sizes.
	sizes []int64
	salt  string
	c     *Corpus
}

// nixpkgsPkg is one package of GenerateCorpus.
type nixpkgsPkg struct {
	name, version string
	size          float64 // typical size in KB
	deps          []string
}

func (g *nixpkgsGen) add(name, version string, size float64, deps []string) {
	if _, dup := g.byName[name]; dup {
		panic("corpus table lists " + name + " twice")
	}
	g.byName[name] = len(g.pkgs)
	g.pkgs = append(g.pkgs, nixpkgsPkg{name, version, size, deps})
}

// table adds the packages of corpusTable.
func (g *nixpkgsGen) table() {
	for _, line := range strings.Split(corpusTable, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		head, deps, _ := strings.Cut(line, ":")
		f := strings.Fields(head)
		if len(f) != 3 {
			panic("eval: bad corpus table line: " + line)
		}
		size, err := strconv.ParseFloat(f[2], 64)
		if err != nil {
			panic("eval: bad size in corpus table line: " + line)
		}
		g.add(f[0], f[1], size, strings.Fields(deps))
	}
}

// jupyter adds the Jupyter stack with its small pure-Python packages.
func (g *nixpkgsGen) jupyter() {
	var jup []string
	for _, n := range strings.Fields(jupyterDeps) {
		name := "python3.11-" + n
		deps := []string{"python3"}
		k := 2 + int(g.rng.next()%2)
		for i := 0; i < k && len(jup) > 0; i++ {
			deps = append(deps, jup[g.rng.next()%uint64(len(jup))])
		}
		g.add(name, fmt.Sprintf("%d.%d.%d", 1+g.rng.next()%4, g.rng.next()%20, g.rng.next()%10), 300, slices.Compact(slices.Sorted(slices.Values(deps))))
		jup = append(jup, name)
	}
	g.add("python3.11-jupyter-server", "2.14.1", 2500, append([]string{"python3", "python3.11-tornado", "python3.11-pyzmq", "python3.11-jinja2", "python3.11-traitlets"}, jup...))
	g.add("python3.11-jupyterlab", "4.2.1", 45000, []string{"python3", "python3.11-jupyter-server", "python3.11-ipykernel", "python3.11-jinja2", "nodejs"})
}

// dependencyOrder orders the packages dependencies first (depth first, in
// table order).
func (g *nixpkgsGen) dependencyOrder() {
	state := make([]int, len(g.pkgs))
	var visit func(i int)
	visit = func(i int) {
		switch state[i] {
		case 1:
			panic("corpus table has a cycle through " + g.pkgs[i].name)
		case 2:
			return
		}
		state[i] = 1
		for _, d := range g.pkgs[i].deps {
			j, ok := g.byName[d]
			if !ok {
				panic("corpus table: " + g.pkgs[i].name + " refers to unknown " + d)
			}
			visit(j)
		}
		state[i] = 2
		g.order = append(g.order, i)
	}
	for i := range g.pkgs {
		visit(i)
	}
}

// drawSizes draws each package's size log-normally around its typical size.
func (g *nixpkgsGen) drawSizes() {
	g.sizes = make([]int64, len(g.pkgs))
	for i, p := range g.pkgs {
		g.sizes[i] = int64(p.size * 1024 * math.Exp(0.35*g.rng.norm()))
		if g.sizes[i] < 1024 {
			g.sizes[i] = 1024
		}
	}
}

// emit adds every package's store path to the corpus, dependencies first,
// with the given versions and sizes, and returns the paths by package.
func (g *nixpkgsGen) emit(version func(i int) string, size func(i int) int64) []string {
	paths := make([]string, len(g.pkgs))
	for _, i := range g.order {
		p := g.pkgs[i]
		var refs []string
		for _, d := range p.deps {
			refs = append(refs, paths[g.byName[d]])
		}
		sort.Strings(refs)
		name := p.name + "-" + version(i)
		h := sha256.Sum256([]byte(g.salt + "\x00" + name + "\x00" + strings.Join(refs, "\x00")))
		paths[i] = "/nix/store/" + closure.EncodeBase32(h[:20]) + "-" + name
		g.c.Paths[paths[i]] = CorpusPath{NarSize: size(i), References: refs}
	}
	return paths
}

// update bumps six packages (a new version, a size within ±3 %) and records
// every changed path in the corpus's "updated".
func (g *nixpkgsGen) update(before []string) {
	bumped := make(map[int]bool)
	for _, n := range strings.Fields("htop git python3.11-numpy nodejs libpng curl") {
		bumped[g.byName[n]] = true
	}
	newSize := make([]int64, len(g.pkgs))
	for i := range g.pkgs {
		newSize[i] = g.sizes[i]
		if bumped[i] {
			newSize[i] = int64(float64(g.sizes[i]) * (0.97 + 0.06*g.rng.float()))
		}
	}
	after := g.emit(func(i int) string {
		if bumped[i] {
			return bumpVersion(g.pkgs[i].version)
		}
		return g.pkgs[i].version
	}, func(i int) int64 { return newSize[i] })
	g.c.Updated = make(map[string]string)
	for i := range g.pkgs {
		// An unchanged package: emit wrote the same path twice.
		if before[i] != after[i] {
			g.c.Updated[before[i]] = after[i]
		}
	}
}

// images adds the images of corpusImages.
func (g *nixpkgsGen) images(before []string) {
	for _, line := range strings.Split(corpusImages, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, pk, _ := strings.Cut(line, ":")
		im := CorpusImage{Name: strings.TrimSpace(name)}
		for _, n := range strings.Fields(pk) {
			i, ok := g.byName[n]
			if !ok {
				panic("corpus image " + name + " asks for unknown package " + n)
			}
			im.Roots = append(im.Roots, before[i])
		}
		sort.Strings(im.Roots)
		g.c.Images = append(g.c.Images, im)
	}
}

// bumpVersion increments the last number of a version.
func bumpVersion(v string) string {
	i := len(v)
	for i > 0 && v[i-1] >= '0' && v[i-1] <= '9' {
		i--
	}
	n, _ := strconv.Atoi(v[i:])
	return v[:i] + strconv.Itoa(n+1)
}

// splitmix is SplitMix64: a tiny generator whose output is fixed forever, so
// the corpus does not change with the Go version.
type splitmix struct{ state uint64 }

func (s *splitmix) next() uint64 {
	s.state += 0x9e3779b97f4a7c15
	z := s.state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// float returns a number in [0, 1).
func (s *splitmix) float() float64 { return float64(s.next()>>11) / (1 << 53) }

// norm returns a standard normal number (Box–Muller).
func (s *splitmix) norm() float64 {
	u1 := s.float()
	if u1 < 1e-300 {
		u1 = 1e-300
	}
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*s.float())
}

// corpusTable lists the packages: name version typical-size-in-KB : the
// packages it refers to at run time (listed earlier).
const corpusTable = `
# the core
xgcc-libgcc 13.2.0 150 :
libunistring 1.1 1900 :
libidn2 2.3.7 400 : libunistring
glibc 2.39-52 29000 : xgcc-libgcc libidn2
gcc-lib 13.2.0 8200 : glibc
gfortran-lib 13.2.0 3200 : glibc gcc-lib
zlib 1.3.1 130 : glibc
bzip2 1.0.8 190 : glibc
xz 5.4.6 1100 : glibc
zstd 1.5.6 1500 : glibc gcc-lib
lz4 1.9.4 320 : glibc
brotli 1.1.0 1100 : glibc
libffi 3.4.6 90 : glibc
gmp 6.3.0 1000 : glibc gcc-lib
mpfr 4.2.1 1100 : glibc gmp
ncurses 6.4 3100 : glibc
readline 8.2p10 800 : glibc ncurses
attr 2.5.2 110 : glibc
acl 2.3.2 300 : glibc attr
libcap 2.69 220 : glibc attr
libxcrypt 4.4.36 200 : glibc
openssl 3.0.14 6400 : glibc
pcre2 10.43 2100 : glibc
expat 2.6.2 320 : glibc
bash 5.2p26 1600 : glibc
bash-interactive 5.2p26 8200 : glibc ncurses readline
coreutils 9.5 6300 : glibc acl attr gmp openssl
gnugrep 3.11 1100 : glibc pcre2 bash
gnused 4.9 800 : glibc
gawk 5.2.2 3100 : glibc readline mpfr gmp
findutils 4.9.0 1500 : glibc coreutils
diffutils 3.10 1500 : glibc coreutils
gzip 1.13 200 : glibc bash
gnutar 1.35 3000 : glibc acl
which 2.21 60 : glibc
less 643 400 : glibc ncurses pcre2
cacert 3.98 480 :
iana-etc 20240318 2000 :
tzdata 2024a 2100 :
keyutils 1.6.3 110 : glibc
e2fsprogs-lib 1.47.0 1000 : glibc
krb5 1.21.2 4100 : glibc openssl keyutils e2fsprogs-lib
nghttp2 1.61.0 200 : glibc
libssh2 1.11.0 500 : glibc openssl zlib
libpsl 0.21.5 150 : glibc libidn2 libunistring
curl 8.7.1 2200 : glibc nghttp2 libssh2 openssl zlib brotli zstd libidn2 libpsl krb5
sqlite 3.45.3 2000 : glibc zlib readline ncurses
gdbm 1.23 500 : glibc readline
mpdecimal 4.0.0 500 : glibc
util-linux-lib 2.39.4 4000 : glibc libxcrypt
icu 74.2 35000 : glibc gcc-lib
libxml2 2.12.7 2000 : glibc zlib xz icu
libxslt 1.1.39 900 : glibc libxml2
perl 5.38.2 55000 : glibc zlib libxcrypt
python3 3.11.9 110000 : glibc bzip2 expat libffi gdbm xz mpdecimal ncurses openssl readline sqlite zlib tzdata libxcrypt util-linux-lib
# images, fonts, X
libpng 1.6.43 500 : glibc zlib
libjpeg-turbo 3.0.2 1800 : glibc
lerc 4.0.0 900 : glibc gcc-lib
libwebp 1.3.2 1200 : glibc libpng libjpeg-turbo
libtiff 4.6.0 1500 : glibc zlib xz zstd libjpeg-turbo libwebp lerc
giflib 5.2.2 150 : glibc
lcms2 2.16 600 : glibc libjpeg-turbo libtiff
openjpeg 2.5.2 1000 : glibc libpng libtiff lcms2
freetype 2.13.2 1100 : glibc zlib bzip2 libpng brotli
fontconfig-lib 2.15.0 1000 : glibc freetype expat
dejavu-fonts 2.37 10500 :
fontconfig-conf 2.15.0 60 : fontconfig-lib dejavu-fonts
libXau 1.0.11 40 : glibc
libXdmcp 1.1.5 60 : glibc
libxcb 1.16.1 3200 : glibc libXau libXdmcp
libX11 1.8.9 3100 : glibc libxcb
libXext 1.3.6 200 : glibc libX11
libXrender 0.9.11 100 : glibc libX11
libXfixes 6.0.1 60 : glibc libX11
libXi 1.8.1 200 : glibc libX11 libXext libXfixes
libXft 2.3.8 150 : glibc libX11 libXrender freetype fontconfig-lib
pixman 0.43.4 1000 : glibc
glib 2.80.2 10500 : glibc pcre2 libffi zlib util-linux-lib
graphite2 1.3.14 300 : glibc gcc-lib
harfbuzz 8.4.0 3200 : glibc freetype glib graphite2 gcc-lib
fribidi 1.0.13 250 : glibc
cairo 1.18.0 3000 : glibc fontconfig-lib freetype pixman libpng libX11 libXext libXrender libxcb glib zlib
pango 1.52.2 2200 : glibc cairo harfbuzz fribidi glib libXft fontconfig-lib freetype
gdk-pixbuf 2.42.11 1300 : glibc glib libpng libjpeg-turbo libtiff
libepoxy 1.5.10 1200 : glibc
wayland 1.22.0 700 : glibc libffi expat
libxkbcommon 1.7.0 900 : glibc libxml2 libxcb wayland
at-spi2-core 2.52.0 2500 : glibc glib dbus libX11 libXi
dbus 1.14.10 2000 : glibc expat
gtk3 3.24.41 42000 : glibc glib cairo pango gdk-pixbuf at-spi2-core libepoxy wayland libxkbcommon libX11 libXi libXext fribidi harfbuzz
# tools
hello 2.12.1 250 : glibc
htop 3.3.0 420 : glibc ncurses libcap
libevent 2.1.12 1500 : glibc openssl
libutempter 1.2.1 40 : glibc
tmux 3.4 1100 : glibc ncurses libevent libutempter
gpm 1.20.7 300 : glibc ncurses
vim 9.1.0377 41000 : glibc ncurses acl gpm
oniguruma 6.9.9 700 : glibc
jq 1.7.1 1500 : glibc oniguruma
ripgrep 14.1.0 5200 : glibc gcc-lib pcre2
fd 10.1.0 3200 : glibc gcc-lib
bat 0.24.0 6300 : glibc gcc-lib zlib libgit2
fzf 0.52.1 4200 :
libgit2 1.7.2 1700 : glibc openssl zlib pcre2 libssh2 http-parser
http-parser 2.9.4 80 : glibc
gettext 0.21.1 9500 : glibc bash
perl5.38-Error 0.17029 60 : perl
perl5.38-TermReadKey 2.38 90 : perl glibc
perl5.38-CGI 4.59 400 : perl
perl5.38-FCGI 0.79 90 : perl glibc
git 2.45.1 52000 : glibc curl openssl zlib expat pcre2 perl bash gettext perl5.38-Error perl5.38-TermReadKey perl5.38-CGI perl5.38-FCGI python3 coreutils gnugrep gnused less
ldns 1.8.3 900 : glibc openssl
libfido2 1.14.0 400 : glibc openssl libcbor udev-lib
libcbor 0.11.0 100 : glibc
udev-lib 255.6 800 : glibc libcap
openssh 9.7p1 5400 : glibc openssl zlib krb5 ldns libfido2 libxcrypt
popt 1.19 200 : glibc
xxhash 0.8.2 300 : glibc
rsync 3.3.0 1000 : glibc acl lz4 openssl popt xxhash zstd
wget 1.24.5 4000 : glibc openssl pcre2 libidn2 zlib libpsl
# languages
libuv 1.48.0 1000 : glibc
c-ares 1.28.1 500 : glibc
nodejs 20.12.2 65000 : glibc icu openssl zlib libuv brotli c-ares nghttp2 gcc-lib
yarn 1.22.22 5400 : nodejs
go 1.22.3 210000 :
llvm-lib 17.0.6 150000 : glibc libffi libxml2 ncurses zlib zstd gcc-lib
rustc 1.77.2 380000 : glibc gcc-lib zlib llvm-lib
cargo 1.77.2 40000 : glibc gcc-lib curl openssl zlib libgit2 libssh2
clang 17.0.6 110000 : glibc llvm-lib gcc-lib libxml2 zlib
linux-headers 6.7 7000 :
glibc-dev 2.39-52 5200 : glibc linux-headers
binutils 2.41 32000 : glibc zlib
libmpc 1.3.1 250 : glibc gmp mpfr
isl 0.20 2200 : glibc gmp
gcc 13.2.0 170000 : glibc glibc-dev gcc-lib binutils gmp mpfr libmpc isl zlib zstd
libyaml 0.2.5 200 : glibc
ruby 3.3.1 32000 : glibc openssl zlib libyaml gdbm readline libffi ncurses gmp libxcrypt
php 8.3.7 42000 : glibc libxml2 openssl pcre2 zlib sqlite curl oniguruma readline libxcrypt
alsa-lib 1.2.11 3000 : glibc
cups-lib 2.4.8 2000 : glibc openssl zlib krb5
openjdk 21.0.3 350000 : glibc alsa-lib freetype fontconfig-lib libX11 libXext libXrender libXi cups-lib zlib libpng giflib lcms2 libjpeg-turbo
# servers
nginx 1.26.0 3100 : glibc openssl pcre2 zlib libxml2 libxslt
jemalloc 5.3.0 2000 : glibc gcc-lib
redis 7.2.4 10500 : glibc openssl jemalloc systemd-minimal-lib
systemd-minimal-lib 255.6 3000 : glibc libcap libxcrypt
openldap 2.6.7 5000 : glibc openssl cyrus-sasl
cyrus-sasl 2.1.28 900 : glibc openssl krb5
postgresql 16.3 62000 : glibc icu libxml2 openssl readline zlib lz4 zstd krb5 systemd-minimal-lib tzdata openldap
mariadb-connector-c 3.3.9 900 : glibc openssl zlib
sqlite-bin 3.45.3 1600 : glibc sqlite readline
# media
libogg 1.3.5 150 : glibc
libvorbis 1.3.7 900 : glibc libogg
libopus 1.5.2 800 : glibc
lame 3.100 1200 : glibc
libvpx 1.14.0 5200 : glibc
x264 0.164 3000 : glibc
x265 3.5 12500 : glibc gcc-lib
dav1d 1.4.1 2000 : glibc
libass 0.17.1 400 : glibc freetype fribidi harfbuzz fontconfig-lib
libdrm 2.4.120 1000 : glibc
libva 2.21.0 900 : glibc libdrm libX11 libXext wayland
SDL2 2.30.3 3500 : glibc libX11 libXext libXi wayland libxkbcommon alsa-lib libdrm
ffmpeg 6.1.1 16000 : glibc libvpx x264 x265 lame libopus libvorbis libogg dav1d libass freetype fontconfig-lib fribidi harfbuzz openssl libdrm libva SDL2 zlib bzip2 xz
libheif 1.17.6 1200 : glibc gcc-lib x265 dav1d libjpeg-turbo libpng
imagemagick 7.1.1-32 22000 : glibc libjpeg-turbo libpng libtiff libwebp freetype fontconfig-lib libxml2 lcms2 openjpeg libheif zlib bzip2 xz zstd libX11 libXext glib
gd 2.3.3 600 : glibc libpng libjpeg-turbo freetype fontconfig-lib libwebp libtiff
graphviz 10.0.1 12000 : glibc cairo pango gd expat zlib libX11 gdk-pixbuf glib
gnutls 3.8.5 4500 : glibc nettle gmp libidn2 libunistring p11-kit libtasn1 zlib
nettle 3.9.1 900 : glibc gmp
p11-kit 0.25.3 3000 : glibc libffi libtasn1
libtasn1 4.19.0 300 : glibc
jansson 2.14 150 : glibc
tree-sitter 0.22.5 800 : glibc
emacs 29.3 150000 : glibc gtk3 gnutls libxml2 jansson tree-sitter sqlite harfbuzz libjpeg-turbo libpng libtiff giflib libwebp ncurses gpm librsvg-lib dbus glib cairo
librsvg-lib 2.58.0 9000 : glibc cairo pango gdk-pixbuf glib libxml2 gcc-lib
# python
python3.11-six 1.16.0 100 : python3
python3.11-packaging 24.0 400 : python3
python3.11-setuptools 69.5.1 5200 : python3
python3.11-pip 24.0 10500 : python3 python3.11-setuptools
python3.11-wheel 0.43.0 300 : python3
python3.11-certifi 2024.2.2 400 : python3 cacert
python3.11-idna 3.7 500 : python3
python3.11-urllib3 2.2.1 800 : python3
python3.11-charset-normalizer 3.3.2 700 : python3
python3.11-requests 2.31.0 500 : python3 python3.11-urllib3 python3.11-idna python3.11-certifi python3.11-charset-normalizer
python3.11-markupsafe 2.1.5 100 : python3 glibc
python3.11-jinja2 3.1.4 1100 : python3 python3.11-markupsafe
python3.11-click 8.1.7 600 : python3
python3.11-itsdangerous 2.2.0 100 : python3
python3.11-blinker 1.8.2 60 : python3
python3.11-werkzeug 3.0.3 3100 : python3 python3.11-markupsafe
python3.11-flask 3.0.3 1000 : python3 python3.11-werkzeug python3.11-jinja2 python3.11-itsdangerous python3.11-click python3.11-blinker
python3.11-asgiref 3.8.1 200 : python3
python3.11-sqlparse 0.5.0 400 : python3
python3.11-django 5.0.6 42000 : python3 python3.11-asgiref python3.11-sqlparse
python3.11-pyyaml 6.0.1 1000 : python3 libyaml glibc
openblas 0.3.27 41000 : glibc gcc-lib gfortran-lib
python3.11-numpy 1.26.4 36000 : python3 openblas gcc-lib gfortran-lib glibc
python3.11-pybind11 2.12.0 900 : python3
python3.11-scipy 1.13.0 112000 : python3 python3.11-numpy openblas gfortran-lib gcc-lib glibc
python3.11-python-dateutil 2.9.0 900 : python3 python3.11-six
python3.11-pytz 2024.1 2600 : python3
python3.11-tzdata 2024.1 1500 : python3
python3.11-pandas 2.2.2 72000 : python3 python3.11-numpy python3.11-python-dateutil python3.11-pytz python3.11-tzdata gcc-lib glibc
python3.11-pillow 10.3.0 5200 : python3 libjpeg-turbo libpng libtiff libwebp zlib freetype lcms2 openjpeg libxcb glibc
python3.11-cycler 0.12.1 50 : python3
python3.11-kiwisolver 1.4.5 400 : python3 gcc-lib glibc
python3.11-pyparsing 3.1.2 1000 : python3
python3.11-contourpy 1.2.1 800 : python3 python3.11-numpy gcc-lib glibc
python3.11-fonttools 4.51.0 12500 : python3
qhull 2020.2 1500 : glibc gcc-lib
python3.11-matplotlib 3.8.4 41000 : python3 python3.11-numpy python3.11-pillow python3.11-cycler python3.11-kiwisolver python3.11-pyparsing python3.11-contourpy python3.11-fonttools python3.11-packaging python3.11-python-dateutil freetype libpng qhull gcc-lib glibc
python3.11-joblib 1.4.2 2000 : python3
python3.11-threadpoolctl 3.5.0 200 : python3
python3.11-scikit-learn 1.4.2 46000 : python3 python3.11-numpy python3.11-scipy python3.11-joblib python3.11-threadpoolctl gcc-lib glibc
python3.11-seaborn 0.13.2 2200 : python3 python3.11-matplotlib python3.11-pandas python3.11-numpy
python3.11-mpmath 1.3.0 5200 : python3
python3.11-sympy 1.12 62000 : python3 python3.11-mpmath
python3.11-networkx 3.3 15500 : python3
python3.11-typing-extensions 4.11.0 300 : python3
python3.11-filelock 3.14.0 100 : python3
python3.11-fsspec 2024.3.1 1500 : python3
python3.11-torch 2.3.0 640000 : python3 python3.11-numpy python3.11-typing-extensions python3.11-sympy python3.11-networkx python3.11-jinja2 python3.11-filelock python3.11-fsspec openblas gcc-lib glibc
python3.11-pygments 2.18.0 9200 : python3
python3.11-traitlets 5.14.3 900 : python3
python3.11-parso 0.8.4 900 : python3
python3.11-jedi 0.19.1 6300 : python3 python3.11-parso
python3.11-wcwidth 0.2.13 300 : python3
python3.11-prompt-toolkit 3.0.43 3100 : python3 python3.11-wcwidth
python3.11-ptyprocess 0.7.0 100 : python3
python3.11-pexpect 4.9.0 400 : python3 python3.11-ptyprocess
python3.11-decorator 5.1.1 60 : python3
python3.11-executing 2.0.1 300 : python3
python3.11-asttokens 2.4.1 200 : python3 python3.11-six
python3.11-pure-eval 0.2.2 80 : python3
python3.11-stack-data 0.6.3 200 : python3 python3.11-executing python3.11-asttokens python3.11-pure-eval
python3.11-matplotlib-inline 0.1.7 50 : python3 python3.11-traitlets
python3.11-ipython 8.24.0 5100 : python3 python3.11-jedi python3.11-traitlets python3.11-prompt-toolkit python3.11-pygments python3.11-pexpect python3.11-decorator python3.11-stack-data python3.11-matplotlib-inline
python3.11-tornado 6.4 4200 : python3 glibc
libsodium 1.0.19 600 : glibc
zeromq 4.3.5 2200 : glibc gcc-lib libsodium
python3.11-pyzmq 26.0.3 3100 : python3 zeromq glibc
python3.11-platformdirs-core 4.2.1 100 : python3
python3.11-jupyter-core 5.7.2 300 : python3 python3.11-traitlets python3.11-platformdirs-core
python3.11-jupyter-client 8.6.1 1000 : python3 python3.11-jupyter-core python3.11-python-dateutil python3.11-pyzmq python3.11-tornado python3.11-traitlets
python3.11-psutil 5.9.8 1500 : python3 glibc
python3.11-debugpy 1.8.1 21000 : python3 glibc
python3.11-nest-asyncio 1.6.0 50 : python3
python3.11-comm 0.2.2 50 : python3 python3.11-traitlets
python3.11-ipykernel 6.29.4 1200 : python3 python3.11-ipython python3.11-jupyter-client python3.11-tornado python3.11-pyzmq python3.11-debugpy python3.11-psutil python3.11-nest-asyncio python3.11-comm python3.11-traitlets python3.11-matplotlib-inline python3.11-packaging
`

const jupyterDeps = `anyio argon2-cffi argon2-cffi-bindings arrow async-lru attrs
beautifulsoup4 bleach cffi defusedxml fastjsonschema fqdn h11 httpcore httpx
isoduration json5 jsonpointer jsonschema jsonschema-specifications
jupyter-events jupyter-lsp jupyter-server-terminals jupyterlab-pygments
jupyterlab-server mistune nbclient nbconvert nbformat overrides pandocfilters
platformdirs prometheus-client pycparser python-json-logger referencing
rfc3339-validator rfc3986-validator rpds-py send2trash sniffio soupsieve
terminado tinycss2 types-python-dateutil uri-template webcolors webencodings
websocket-client`

const corpusImages = `
hello: hello
shell: bash-interactive coreutils gnugrep gnused gawk findutils diffutils gzip gnutar less which
shell-git: bash-interactive coreutils gnugrep gnused gawk findutils diffutils gzip gnutar less which git
shell-git-htop: bash-interactive coreutils gnugrep gnused gawk findutils diffutils gzip gnutar less which git htop
git: git
htop: htop
shell-vim: bash-interactive coreutils gnugrep gnused gawk findutils diffutils gzip gnutar less which vim
shell-tmux-htop: bash-interactive coreutils gnugrep gnused gawk findutils diffutils gzip gnutar less which tmux htop
curl: curl cacert
jq: jq
shell-jq-curl: bash-interactive coreutils gnugrep gnused gawk findutils diffutils gzip gnutar less which jq curl cacert
shell-search: bash-interactive coreutils ripgrep fd bat fzf
openssh: openssh
rsync: rsync openssh
wget: wget cacert
devops: bash-interactive coreutils git openssh curl jq cacert rsync
python3: python3
python3-requests: python3 python3.11-requests
python3-numpy: python3 python3.11-numpy
python3-pandas: python3 python3.11-numpy python3.11-pandas
python3-scipy-matplotlib: python3 python3.11-numpy python3.11-scipy python3.11-matplotlib
python3-datascience: bash-interactive coreutils python3 python3.11-numpy python3.11-scipy python3.11-pandas python3.11-matplotlib python3.11-seaborn python3.11-scikit-learn python3.11-sympy python3.11-networkx python3.11-ipython python3.11-ipykernel python3.11-jupyterlab python3.11-requests python3.11-pyyaml python3.11-pip
python3-jupyter: python3 python3.11-jupyterlab python3.11-numpy python3.11-pandas python3.11-matplotlib
python3-ipython: python3 python3.11-ipython
python3-flask: python3 python3.11-flask python3.11-requests
python3-django: python3 python3.11-django python3.11-pyyaml
python3-torch: python3 python3.11-torch python3.11-numpy
python3-sklearn: python3 python3.11-scikit-learn python3.11-pandas
python3-pillow: python3 python3.11-pillow
nodejs: nodejs
nodejs-yarn: nodejs yarn bash
shell-nodejs-git: bash-interactive coreutils gnugrep gnused gawk findutils diffutils gzip gnutar less which nodejs git
go: go bash coreutils git
rust: rustc cargo gcc
gcc: gcc binutils bash coreutils
clang: clang binutils glibc-dev
nginx: nginx cacert iana-etc
redis: redis
postgresql: postgresql
shell-postgresql: bash-interactive coreutils gnugrep gnused gawk findutils diffutils gzip gnutar less which postgresql
sqlite: sqlite-bin
mariadb-client: mariadb-connector-c bash
ffmpeg: ffmpeg
imagemagick: imagemagick
graphviz: graphviz
emacs: emacs
ruby: ruby
php: php cacert
openjdk: openjdk
perl: perl
shell-python3: bash-interactive coreutils gnugrep gnused gawk findutils diffutils gzip gnutar less which python3
`
