package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"gopkg.in/yaml.v3"

	"strata/test/registries"
)

// The release tests share one XDG_CACHE_HOME, so strata build's cache
// (hello+busybox for both platforms) is filled once.
var (
	relCacheOnce sync.Once
	relCache     string
)

func releaseCache(t *testing.T) string {
	t.Helper()
	relCacheOnce.Do(func() {
		d, err := osMkdirTemp()
		if err != nil {
			t.Fatal(err)
		}
		relCache = d
		atExit = append(atExit, func() { os.RemoveAll(d) })
	})
	return relCache
}

// shBlocks returns the ```sh blocks of a markdown file, in order.
func shBlocks(t *testing.T, file string) []string {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?s)```sh\n(.*?)```")
	var out []string
	for _, m := range re.FindAllStringSubmatch(string(raw), -1) {
		out = append(out, m[1])
	}
	if len(out) == 0 {
		t.Fatalf("%s has no sh blocks", file)
	}
	return out
}

// releaseTarget is a registry with htpasswd auth the flow runs against.
type releaseTarget struct {
	host, image, user, pass string
	logs                    func() string
	access                  *registries.AccessLog // docker-registry only
}

func startReleaseTarget(t *testing.T, kind string) releaseTarget {
	t.Helper()
	rt := releaseTarget{user: "ci", pass: pubSecret(t, "rel-secret-")}
	switch kind {
	case "strata":
		s := startAuthServer(t, "--htpasswd", writeHtpasswd(t, rt.user, rt.pass), "--anonymous-pull=false")
		rt.host, rt.image, rt.logs = s.Addr, s.Addr+"/pushed/hello", s.Log
	case "docker-registry":
		d := registries.StartDistribution(t, registries.DistributionOptions{Users: map[string]string{rt.user: rt.pass}})
		rt.host, rt.image, rt.logs, rt.access = d.Host, d.Host+"/release/hello", func() string { d.Sync(t); return d.Log.Raw() }, d.Log
	default:
		t.Fatalf("unknown registry %s", kind)
	}
	return rt
}

// releaseWorkdir is a directory holding the repository's testdata and
// examples (symlinked), where the documented commands run as typed.
func releaseWorkdir(t *testing.T) string {
	t.Helper()
	w := t.TempDir()
	for _, d := range []string{"testdata", "examples"} {
		if err := os.Symlink(filepath.Join(repoRoot, d), filepath.Join(w, d)); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// releaseEnv is the environment of the flow's commands: strata on PATH, a
// HOME of the test's own, the settings of docs/release.md.
func releaseEnv(t *testing.T, rt releaseTarget, extra ...string) []string {
	t.Helper()
	env := pubEnv(t.TempDir(), "PATH="+filepath.Dir(strataBin)+":"+os.Getenv("PATH"),
		"XDG_CACHE_HOME="+releaseCache(t), "IMAGE="+rt.image, "VERSION=1.0.0", "REGISTRY_USER="+rt.user, "REGISTRY_TOKEN="+rt.pass)
	return append(env, extra...)
}

// shRun runs script with sh -eu in dir; it returns the combined output
// and the exit code.
func shRun(t *testing.T, c *pubCapture, dir string, env []string, script string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-euc", script)
	cmd.Dir, cmd.Env = dir, env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	c.add(out.String())
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &ee):
		return out.String(), ee.ExitCode()
	}
	t.Fatalf("sh: %v", err)
	return "", -1
}

func readDigest(t *testing.T, file string) string {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	d := strings.TrimSpace(string(raw))
	if _, err := v1.NewHash(d); err != nil {
		t.Fatalf("%s holds %q, not a digest", file, d)
	}
	return d
}

// releaseGet GETs a manifest of the target with one Accept header, through
// ggcr's authenticating transport (Basic, or the token service).
func releaseGet(t *testing.T, rt releaseTarget, repo name.Repository, ref, accept string) (string, []byte) {
	t.Helper()
	auth := authn.FromConfig(authn.AuthConfig{Username: rt.user, Password: rt.pass})
	tr, err := transport.NewWithContext(context.Background(), repo.Registry, auth, http.DefaultTransport, []string{repo.Scope(transport.PullScope)})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+rt.host+"/v2/"+repo.RepositoryStr()+"/manifests/"+ref, nil)
	req.Header.Set("Accept", accept)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s:%s: %d %s", repo, ref, resp.StatusCode, body)
	}
	return resp.Header.Get("Content-Type"), body
}

// checkRelease checks what the flow left in the registry: per-platform
// tags that are image manifests with their SBOM among their referrers, an
// index with the annotations pinning both, latest on the index.
func checkRelease(t *testing.T, rt releaseTarget, version string, amd, arm, index string) {
	t.Helper()
	repo, err := name.NewRepository(rt.image, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	ropts := []remote.Option{remote.WithAuth(authn.FromConfig(authn.AuthConfig{Username: rt.user, Password: rt.pass}))}
	for arch, d := range map[string]string{"amd64": amd, "arm64": arm} {
		ct, body := releaseGet(t, rt, repo, version+"-"+arch, string(types.OCIManifestSchema1))
		var m v1.Manifest
		if err := json.Unmarshal(body, &m); err != nil || ct != string(types.OCIManifestSchema1) || m.Config.Digest.String() == "" || len(m.Layers) == 0 {
			t.Fatalf("%s:%s-%s is %s, not an image manifest: %s", rt.image, version, arch, ct, body)
		}
		if got := digestOf(body); got != d {
			t.Errorf("%s-%s names %s, the push wrote %s", version, arch, got, d)
		}
		idx, err := remote.Referrers(repo.Digest(d), ropts...)
		if err != nil {
			t.Fatalf("referrers of the %s image: %v", arch, err)
		}
		im, _ := idx.IndexManifest()
		var sboms int
		for _, r := range im.Manifests {
			if r.ArtifactType == "application/spdx+json" {
				sboms++
			}
		}
		if sboms != 1 {
			t.Errorf("the %s image %s has %d SBOMs among its referrers, want 1: %+v", arch, d, sboms, im.Manifests)
		}
	}
	ct, body := releaseGet(t, rt, repo, version, string(types.OCIImageIndex))
	if ct != string(types.OCIImageIndex) || digestOf(body) != index {
		t.Fatalf("%s:%s is %s %s, want the index %s", rt.image, version, ct, digestOf(body), index)
	}
	var im v1.IndexManifest
	if err := json.Unmarshal(body, &im); err != nil {
		t.Fatal(err)
	}
	if im.Annotations["org.opencontainers.image.version"] != version || im.Annotations["org.opencontainers.image.source"] == "" {
		t.Errorf("index annotations %v", im.Annotations)
	}
	pinned := map[string]string{}
	for _, m := range im.Manifests {
		if m.Platform != nil {
			pinned[m.Platform.Architecture] = m.Digest.String()
		}
	}
	if len(im.Manifests) != 2 || pinned["amd64"] != amd || pinned["arm64"] != arm {
		t.Errorf("index manifests %v, want amd64 %s and arm64 %s", pinned, amd, arm)
	}
	if _, body := releaseGet(t, rt, repo, "latest", string(types.OCIImageIndex)); digestOf(body) != index {
		t.Errorf("latest is %s, want the index %s", digestOf(body), index)
	}
	if rt.access != nil {
		// latest is the last mutation of the release.
		muts := pubMutations(rt.access, 0)
		if last := muts[len(muts)-1]; last.Method != http.MethodPut || last.Path() != "/v2/"+repo.RepositoryStr()+"/manifests/latest" {
			t.Errorf("the last mutation is %s, want PUT manifests/latest", last)
		}
	}
}

func digestOf(raw []byte) string {
	h, _, _ := v1.SHA256(bytes.NewReader(raw))
	return h.String()
}

// TestReleaseDocs runs every command of docs/release.md, each block as its
// own shell, against strata's registry with htpasswd auth and against
// docker-registry, then checks the release, pulls the index with podman and
// runs it. No secret appears in any output or registry log.
func TestReleaseDocs(t *testing.T) {
	need(t, "nix-build")
	blocks := shBlocks(t, filepath.Join(repoRoot, "docs", "release.md"))
	for _, kind := range []string{"strata", "docker-registry"} {
		t.Run(kind, func(t *testing.T) {
			rt := startReleaseTarget(t, kind)
			c := newPubCapture(t, rt.logs, rt.pass)
			work := releaseWorkdir(t)
			env := releaseEnv(t, rt)
			for i, b := range blocks {
				out, code := shRun(t, c, work, env, b)
				if code != 0 {
					t.Fatalf("docs/release.md block %d exited %d:\n%s\n%s", i+1, code, b, pubTail(out))
				}
				if strings.Contains(b, "--dry-run") && !strings.Contains(out, "dry run") {
					t.Errorf("block %d: a dry run that does not say so: %s", i+1, out)
				}
			}
			amd, arm := readDigest(t, filepath.Join(work, "out", "amd64.digest")), readDigest(t, filepath.Join(work, "out", "arm64.digest"))
			checkRelease(t, rt, "1.0.0", amd, arm, readDigest(t, filepath.Join(work, "out", "index.digest")))
			// The scripts of the CI block released the same digests.
			if d := readDigest(t, filepath.Join(work, "ci-out", "amd64.digest")); d != amd {
				t.Errorf("push-amd64 pushed %s, the documented push %s", d, amd)
			}

			p := newPodman(t)
			ref := rt.image + ":1.0.0"
			c.add(p.must(5*time.Minute, "pull", "--tls-verify=false", "--creds", rt.user+":"+rt.pass, ref))
			out := p.must(5*time.Minute, "run", "--rm", ref)
			c.add(out)
			if !strings.Contains(out, greeting) {
				t.Fatalf("podman run %s: %q", ref, out)
			}
		})
	}
}

// TestReleaseCIScripts runs examples/python-app/ci as a CI would: the
// steps of .woodpecker.yml in order, as a branch pipeline (a dry run that
// changes nothing) and as a tag pipeline (a release, latest last); the
// blockers; the pass fallback of the credential chain; and checks the
// GitHub Actions workflow runs the same scripts.
func TestReleaseCIScripts(t *testing.T) {
	need(t, "nix-build")
	rt := startReleaseTarget(t, "docker-registry")
	c := newPubCapture(t, rt.logs, rt.pass)
	work := releaseWorkdir(t)
	ci := filepath.Join(repoRoot, "examples", "python-app", "ci")
	settings := []string{"DESCRIPTION=examples/publish/hello.yaml", "PKGS_PATH=testdata/pkgs"}

	raw, err := os.ReadFile(filepath.Join(ci, ".woodpecker.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var wp struct {
		Steps []struct {
			Name     string   `yaml:"name"`
			Commands []string `yaml:"commands"`
		} `yaml:"steps"`
	}
	if err := yaml.Unmarshal(raw, &wp); err != nil {
		t.Fatalf(".woodpecker.yml: %v", err)
	}
	var names []string
	for _, s := range wp.Steps {
		names = append(names, s.Name)
	}
	if strings.Join(names, " ") != "package-set build-amd64 build-arm64 push-amd64 push-arm64 index publish" {
		t.Fatalf(".woodpecker.yml steps %v", names)
	}
	pipeline := func(extra ...string) {
		t.Helper()
		env := releaseEnv(t, rt, append(settings, extra...)...)
		for _, s := range wp.Steps[1:] {
			for _, cmd := range s.Commands {
				cmd = strings.ReplaceAll(cmd, "$$", "$") // Woodpecker's escape
				if out, code := shRun(t, c, work, env, cmd); code != 0 {
					t.Fatalf("step %s: %s exited %d:\n%s", s.Name, cmd, code, pubTail(out))
				}
			}
		}
	}

	// A branch pipeline: a dry run, nothing changes.
	rt.logs()
	n := rt.access.Len()
	pipeline("VERSION=")
	rt.logs()
	if m := pubMutations(rt.access, n); len(m) > 0 {
		t.Fatalf("the dry-run pipeline mutated the registry: %v", m)
	}
	// A tag pipeline: version 2.0.0 from the tag, released, latest last.
	pipeline("VERSION=", "CI_COMMIT_TAG=v2.0.0")
	rt.logs()
	checkRelease(t, rt, "2.0.0", readDigest(t, filepath.Join(work, "out", "amd64.digest")),
		readDigest(t, filepath.Join(work, "out", "arm64.digest")), readDigest(t, filepath.Join(work, "out", "index.digest")))

	// The credential chain: no $REGISTRY_TOKEN, pass has it.
	bin := t.TempDir()
	pass := "#!/bin/sh\n[ \"$1 $2\" = \"show ci/registry\" ] || exit 1\nprintf '%s\\n' \"$RELEASE_TEST_PASS\"\n"
	if err := os.WriteFile(filepath.Join(bin, "pass"), []byte(pass), 0o755); err != nil {
		t.Fatal(err)
	}
	withPass := releaseEnv(t, rt, append(settings, "REGISTRY_TOKEN=", "PASS_ENTRY=ci/registry", "RELEASE_TEST_PASS="+rt.pass,
		"PATH="+bin+":"+filepath.Dir(strataBin)+":"+os.Getenv("PATH"), "PUBLISH=1", "VERSION=2.0.1")...)
	if out, code := shRun(t, c, work, withPass, "examples/python-app/ci/push-amd64"); code != 0 || !strings.Contains(out, "pushed "+rt.image+":2.0.1-amd64@") {
		t.Fatalf("push with the token from pass: exit %d\n%s", code, out)
	}

	// A build step that made the wrong platform: its push step refuses it,
	// naming what it found, and pushes nothing.
	wrong := filepath.Join(work, "wrong")
	if err := os.MkdirAll(wrong, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(work, "out", "amd64"), filepath.Join(wrong, "arm64")); err != nil {
		t.Fatal(err)
	}
	rt.logs()
	n = rt.access.Len()
	wrongEnv := releaseEnv(t, rt, append(settings, "OUT=wrong", "PUBLISH=1", "VERSION=2.0.2")...)
	if out, code := shRun(t, c, work, wrongEnv, "examples/python-app/ci/push-arm64"); code == 0 || !strings.Contains(out, "no linux/arm64 image") || !strings.Contains(out, "linux/amd64") {
		t.Errorf("push-arm64 of an amd64 layout: exit %d\n%s", code, out)
	}
	rt.logs()
	if m := pubMutations(rt.access, n); len(m) > 0 {
		t.Errorf("the wrong platform was pushed: %v", m)
	}

	// The blockers: exit 2, named, nothing pushed.
	rt.logs()
	n = rt.access.Len()
	for _, tc := range []struct {
		name string
		env  []string
		want string
	}{
		{"registry-down", []string{"IMAGE=" + freeAddr(t) + "/release/hello"}, "BLOCKER(registry-down)"},
		{"empty-token", []string{"REGISTRY_TOKEN="}, "BLOCKER(empty-token)"},
	} {
		env := releaseEnv(t, rt, append(settings, append(tc.env, "PUBLISH=1")...)...)
		for _, step := range []string{"push-amd64", "index", "publish"} {
			out, code := shRun(t, c, work, env, "examples/python-app/ci/"+step)
			if code != 2 || !strings.Contains(out, tc.want) {
				t.Errorf("%s: %s exited %d, want 2 with %s:\n%s", tc.name, step, code, tc.want, out)
			}
		}
	}
	rt.logs()
	if m := pubMutations(rt.access, n); len(m) > 0 {
		t.Errorf("blocked steps mutated the registry: %v", m)
	}

	// GitHub Actions runs the same scripts, one job each, in this order.
	gh, err := os.ReadFile(filepath.Join(ci, "github-release.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var wf struct {
		Jobs map[string]struct {
			Needs any `yaml:"needs"`
			Steps []struct {
				Run string `yaml:"run"`
			} `yaml:"steps"`
		} `yaml:"jobs"`
	}
	if err := yaml.Unmarshal(gh, &wf); err != nil {
		t.Fatalf("github-release.yml: %v", err)
	}
	want := map[string]struct{ run, needs string }{
		"build":   {"examples/python-app/ci/build-${{ matrix.arch }}", "<nil>"},
		"push":    {"examples/python-app/ci/push-${{ matrix.arch }}", "build"},
		"index":   {"examples/python-app/ci/index", "push"},
		"publish": {"examples/python-app/ci/publish", "index"},
	}
	for job, w := range want {
		j, ok := wf.Jobs[job]
		found := false
		for _, s := range j.Steps {
			found = found || s.Run == w.run
		}
		if !ok || !found || fmtAny(j.Needs) != w.needs {
			t.Errorf("github-release.yml job %s: needs %v, steps %+v; want needs %s and run %s", job, j.Needs, j.Steps, w.needs, w.run)
		}
	}
}

func fmtAny(v any) string {
	if v == nil {
		return "<nil>"
	}
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// TestReleasePythonApp runs the CI scripts with their defaults, the Python
// app of examples/python-app and the Debian package set that
// scripts/debian-pkgs.sh makes, against docker-registry with htpasswd
// auth; then podman pulls the release.
func TestReleasePythonApp(t *testing.T) {
	need(t, "nix-build")
	// make debian-pkgs's place: cached from one run to the next.
	pkgs := filepath.Join(repoRoot, ".cache", "debian-pkgs")
	c := &pubCapture{}
	if out, code := shRun(t, c, repoRoot, os.Environ(), "bash scripts/debian-pkgs.sh "+pkgs); code != 0 {
		t.Fatalf("scripts/debian-pkgs.sh exited %d:\n%s", code, pubTail(out))
	}
	rt := startReleaseTarget(t, "docker-registry")
	c = newPubCapture(t, rt.logs, rt.pass)
	work := releaseWorkdir(t)
	env := releaseEnv(t, rt, "PKGS_PATH="+pkgs, "VERSION=3.1.4", "IMAGE="+rt.host+"/examples/python-app")
	rt.image = rt.host + "/examples/python-app"
	for _, step := range []string{"build-amd64", "build-arm64", "push-amd64", "push-arm64", "index", "publish"} {
		for _, publish := range []string{"", "1"} {
			if publish == "1" && strings.HasPrefix(step, "build") {
				continue
			}
			out, code := shRun(t, c, work, append(env, "PUBLISH="+publish), "examples/python-app/ci/"+step)
			if code != 0 {
				t.Fatalf("%s (PUBLISH=%s) exited %d:\n%s", step, publish, code, pubTail(out))
			}
		}
	}
	checkRelease(t, rt, "3.1.4", readDigest(t, filepath.Join(work, "out", "amd64.digest")),
		readDigest(t, filepath.Join(work, "out", "arm64.digest")), readDigest(t, filepath.Join(work, "out", "index.digest")))

	// podman pulls the release (the index, then the image of this host's
	// platform). Running the app is the package set's test: on 2026-12-02
	// python3 of the Debian set does not find its standard library when
	// started through the image's /bin/python3 symlink.
	p := newPodman(t)
	ref := rt.image + ":3.1.4"
	c.add(p.must(5*time.Minute, "pull", "--tls-verify=false", "--creds", rt.user+":"+rt.pass, ref))
	out := p.must(time.Minute, "image", "inspect", "--format", "{{.Digest}} {{.Architecture}} {{.Config.Entrypoint}}", ref)
	c.add(out)
	if !strings.Contains(out, "amd64") || !strings.Contains(out, "/app/app.py") {
		t.Fatalf("podman image inspect %s: %q", ref, out)
	}
}
