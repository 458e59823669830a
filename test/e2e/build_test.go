package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// buildOut is the part of `strata build --json` the tests read.
type buildOut struct {
	Name         string `json:"name"`
	Digest       string `json:"digest"`
	DockerDigest string `json:"dockerDigest"`
	LayersPacked int    `json:"layersPacked"`
	Cached       bool   `json:"cached"`
	Manifests    []struct {
		Platform string `json:"platform"`
		Digest   string `json:"digest"`
		Layers   []struct {
			Digest  string `json:"digest"`
			Size    int64  `json:"size"`
			Comment string `json:"comment"`
		} `json:"layers"`
	} `json:"manifests"`
}

// strataBuild runs strata build with the offline package set; it returns
// stdout, stderr and the error.
func strataBuild(t testing.TB, limit time.Duration, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	all := append([]string{"build", "--pkgs-path", filepath.Join(repoRoot, "testdata", "pkgs")}, args...)
	cmd := exec.CommandContext(ctx, strataBin, all...)
	cmd.Dir = repoRoot
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

func mustBuild(t testing.TB, args ...string) buildOut {
	t.Helper()
	stdout, stderr, err := strataBuild(t, 10*time.Minute, append(args, "--json")...)
	if err != nil {
		t.Fatalf("strata build %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	var out buildOut
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("strata build --json: %v\n%s", err, stdout)
	}
	return out
}

var lixFile = filepath.Join("examples", "lix", "image.nix")

// layerStorePaths lists the store paths (nix/store/<name>) a layer holds.
func layerStorePaths(t *testing.T, l v1.Layer) []string {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	seen := map[string]bool{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(h.Name, "./")
		if rest, ok := strings.CutPrefix(name, "nix/store/"); ok {
			top, _, _ := strings.Cut(rest, "/")
			if top != "" {
				seen["/nix/store/"+top] = true
			}
		}
	}
	var out []string
	for p := range seen {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

var storeNameRE = regexp.MustCompile(`^/nix/store/[0-9a-z]{32}-(.*)$`)

func storeNames(paths []string) []string {
	var out []string
	for _, p := range paths {
		if m := storeNameRE.FindStringSubmatch(p); m != nil {
			out = append(out, m[1])
		}
	}
	return out
}

// TestBuildLix builds the Lix-style example to an OCI layout and a
// docker-archive, runs it with podman and checks its layers, accounts,
// labels and Nix database.
func TestBuildLix(t *testing.T) {
	need(t, "nix-build")
	umoci := need(t, "umoci")
	sqlite := need(t, "sqlite3")
	dir := t.TempDir()
	ociDir := filepath.Join(dir, "oci")
	archive := filepath.Join(dir, "lix.tar")
	out := mustBuild(t, "--cache-dir", filepath.Join(dir, "cache"), "-f", lixFile,
		"--output", "oci:"+ociDir, "--output", "docker-archive:"+archive)
	if len(out.Manifests) != 1 {
		t.Fatalf("want one manifest, got %+v", out)
	}

	// The layers follow the four groups, in order.
	p, err := layout.FromPath(ociDir)
	if err != nil {
		t.Fatal(err)
	}
	h, err := v1.NewHash(out.Digest)
	if err != nil {
		t.Fatal(err)
	}
	img, err := p.Image(h)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) < 6 {
		t.Fatalf("%d layers, want 4 groups + auto + customisation", len(layers))
	}
	wantGroups := []struct {
		comment string
		names   []string
	}{
		{"layer group coreutils", []string{"busybox-1.35.0"}},
		{"layer group curl+libxml2+sqlite", []string{"glibc-2.38", "libbar-2.3.0", "libfoo-1.9.0", "zlib-1.3"}},
		{"layer group git", []string{"hello-2.12.1"}},
		{"layer group channel", []string{"strata-pkgs-channel"}},
	}
	var closure []string
	for i, l := range layers[:len(layers)-1] {
		paths := layerStorePaths(t, l)
		closure = append(closure, paths...)
		if i >= len(wantGroups) {
			continue
		}
		w := wantGroups[i]
		if !strings.HasPrefix(out.Manifests[0].Layers[i].Comment, w.comment) {
			t.Errorf("layer %d comment %q, want %q", i, out.Manifests[0].Layers[i].Comment, w.comment)
		}
		got := storeNames(paths)
		names := map[string]bool{}
		for _, n := range got {
			names[strings.SplitN(n, "-", 2)[0]] = true
		}
		for _, n := range w.names {
			if !names[strings.SplitN(n, "-", 2)[0]] {
				t.Errorf("layer %d (%s) holds %v, want %v", i, w.comment, got, w.names)
			}
		}
		if len(got) != len(w.names) {
			t.Errorf("layer %d (%s) holds %v, want exactly %v", i, w.comment, got, w.names)
		}
	}
	sort.Strings(closure)

	// podman loads the archive and runs it.
	pm := newPodman(t)
	loaded := pm.must(3*time.Minute, "load", "-i", archive)
	m := regexp.MustCompile(`Loaded image(?:\(s\))?: (\S+)`).FindStringSubmatch(loaded)
	if m == nil {
		t.Fatalf("podman load: no image name in\n%s", loaded)
	}
	ref := m[1]
	got := pm.must(3*time.Minute, "run", "--rm", ref, "/bin/sh", "-c",
		"wc -l < /etc/passwd; ls -ld /tmp /var/tmp; grep -c nixbld /etc/group; cat /etc/nix/nix.conf; ls /nix/var/nix/profiles/default/manifest.nix; hello")
	lines := strings.Split(strings.TrimSpace(got), "\n")
	if strings.TrimSpace(lines[0]) != "34" {
		t.Errorf("/etc/passwd has %q users, want 34\n%s", lines[0], got)
	}
	for _, d := range []string{"/tmp", "/var/tmp"} {
		if !regexp.MustCompile(`(?m)^drwxrwxrwt .* ` + d + `$`).MatchString(got) {
			t.Errorf("%s is not mode 1777:\n%s", d, got)
		}
	}
	for _, want := range []string{"build-users-group = nixbld", "/nix/var/nix/profiles/default/manifest.nix", "Hello, world!"} {
		if !strings.Contains(got, want) {
			t.Errorf("container output lacks %q:\n%s", want, got)
		}
	}
	var inspect []struct {
		Config struct {
			Labels map[string]string
		}
	}
	if err := json.Unmarshal([]byte(pm.must(time.Minute, "inspect", ref)), &inspect); err != nil || len(inspect) != 1 {
		t.Fatalf("podman inspect: %v", err)
	}
	for _, k := range []string{"title", "source", "vendor", "version", "description", "revision"} {
		if inspect[0].Config.Labels["org.opencontainers.image."+k] == "" {
			t.Errorf("label org.opencontainers.image.%s missing: %v", k, inspect[0].Config.Labels)
		}
	}

	// The Nix database lists exactly the image's closure.
	bundle := filepath.Join(dir, "bundle")
	mustRun(t, 3*time.Minute, umoci, "unpack", "--image", ociDir+":latest", bundle)
	db := filepath.Join(bundle, "rootfs", "nix", "var", "nix", "db", "db.sqlite")
	valid := strings.Fields(mustRun(t, time.Minute, sqlite, db, "SELECT path FROM ValidPaths ORDER BY path"))
	if strings.Join(valid, "\n") != strings.Join(closure, "\n") {
		t.Errorf("ValidPaths:\n%s\nimage closure:\n%s", strings.Join(valid, "\n"), strings.Join(closure, "\n"))
	}
	if n := strings.TrimSpace(mustRun(t, time.Minute, sqlite, db, "SELECT count(*) FROM ValidPaths WHERE narSize > 0 AND hash LIKE 'sha256:%'")); n != strconv.Itoa(len(closure)) {
		t.Errorf("%s of %d valid paths have a narHash and narSize", n, len(closure))
	}
	if n := strings.TrimSpace(mustRun(t, time.Minute, sqlite, db, "SELECT count(*) FROM Refs")); n == "0" {
		t.Errorf("the database has no references")
	}
}

// TestBuildReproducibleAndCached builds the Lix example on two cache
// directories (same digests) and again on a warm one (nothing packed).
func TestBuildReproducibleAndCached(t *testing.T) {
	need(t, "nix-build")
	need(t, "sqlite3")
	dir := t.TempDir()
	c1, c2 := filepath.Join(dir, "c1"), filepath.Join(dir, "c2")
	a := mustBuild(t, "--cache-dir", c1, "-f", lixFile, "--output", "oci:"+filepath.Join(dir, "a"))
	b := mustBuild(t, "--cache-dir", c2, "-f", lixFile, "--output", "oci:"+filepath.Join(dir, "b"))
	if a.Digest != b.Digest || a.DockerDigest != b.DockerDigest {
		t.Errorf("two cold builds differ: %s/%s vs %s/%s", a.Digest, a.DockerDigest, b.Digest, b.DockerDigest)
	}
	if a.LayersPacked == 0 {
		t.Errorf("a cold build packed no layer")
	}
	idxA, _ := os.ReadFile(filepath.Join(dir, "a", "index.json"))
	idxB, _ := os.ReadFile(filepath.Join(dir, "b", "index.json"))
	if !bytes.Equal(idxA, idxB) {
		t.Errorf("the OCI layouts' indexes differ:\n%s\n%s", idxA, idxB)
	}
	warm := mustBuild(t, "--cache-dir", c1, "-f", lixFile)
	if warm.LayersPacked != 0 || warm.Digest != a.Digest {
		t.Errorf("warm rebuild packed %d layers (digest %s, want %s)", warm.LayersPacked, warm.Digest, a.Digest)
	}

	// A change to one package packs only the layers that hold it.
	base := "name: app\npackages: [bigapp, %s]\nlayers:\n  - packages: [bigapp]\n"
	f1 := filepath.Join(dir, "v1.yaml")
	f2 := filepath.Join(dir, "v2.yaml")
	writeFile(t, f1, strings.Replace(base, "%s", "hello", 1))
	writeFile(t, f2, strings.Replace(base, "%s", "gnuMake", 1))
	mustBuild(t, "--cache-dir", c1, "-f", f1)
	v2 := mustBuild(t, "--cache-dir", c1, "-f", f2)
	if v2.LayersPacked != 2 {
		t.Errorf("after swapping one small package %d layers were packed, want 2 (its layer and the customisation layer): %+v", v2.LayersPacked, v2.Manifests)
	}
}

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestBuildDescriptionErrors: mistakes fail before any build, naming the
// line or the package.
func TestBuildDescriptionErrors(t *testing.T) {
	need(t, "nix-build")
	cases := []struct {
		name, doc string
		want      []string
	}{
		{"unknown key", "name: x\npackages:\n  - hello\nconfig:\n  cmd: [hello]\n  env:\n    A: b\n  labls: {a: b}\n", []string{"line 8", `unknown key "labls"`, `did you mean "labels"`}},
		{"wrong type", "name: x\npackages: [hello]\nusers:\n  - name: app\n    uid: 1000\n  - name: other\n    uid: one\n", []string{"line 7", "wrong type", "want a number"}},
		{"unknown package", "name: x\npackages:\n  - busybox\n  - helo\n", []string{"line 4", `unknown package "helo"`, `did you mean "hello"`}},
		{"overlapping groups", "packages: [hello]\nlayers:\n  - packages: [busybox, zlib]\n  - packages: [hello]\n  - packages:\n      - libfoo\n      - zlib\n", []string{"line 7", `"zlib" is in layer groups 1 and 3`}},
		{"duplicate uid", "packages: [hello]\nusers:\n  - name: a\n    uid: 1000\n  - name: b\n    uid: 1000\n", []string{"line 6", "duplicate uid"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			f := filepath.Join(dir, "image.yaml")
			writeFile(t, f, c.doc)
			cache := filepath.Join(dir, "cache")
			_, stderr, err := strataBuild(t, 5*time.Minute, "--cache-dir", cache, "-f", f, "--output", "oci:"+filepath.Join(dir, "out"))
			if err == nil {
				t.Fatalf("strata build succeeded on\n%s", c.doc)
			}
			for _, w := range c.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			// Nothing was built: no layer, no image, no output.
			for _, p := range []string{filepath.Join(cache, "cache"), filepath.Join(cache, "blobs"), filepath.Join(dir, "out")} {
				if _, err := os.Stat(p); err == nil {
					entries, _ := os.ReadDir(p)
					if len(entries) > 0 {
						t.Errorf("%s exists after a failed build", p)
					}
				}
			}
		})
	}
}
