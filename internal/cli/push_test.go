package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"strata/test/registries"
)

// runPublish runs the strata command line with stdin and an environment,
// returning stdout, stderr and the error.
func runPublish(t *testing.T, stdin string, env map[string]string, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &Env{Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return env[k] },
		Log: slog.New(slog.NewJSONHandler(&errb, nil))}
	root := NewRoot(e)
	root.SetArgs(args)
	root.SetIn(strings.NewReader(stdin))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := root.ExecuteContext(ctx)
	return out.String(), errb.String(), err
}

func TestPushCopyIndexCommands(t *testing.T) {
	const password = "cli-secret-Hq82nVd0"
	const wrong = "cli-wrong-Pz61xLc4"
	reg := registries.StartDistribution(t, registries.DistributionOptions{})
	proxy := registries.StartProxy(t, reg.Host, registries.ProxyOptions{Bearer: &registries.BearerOptions{
		Users: map[string]string{"bob": password}}})
	var captured strings.Builder
	defer func() {
		for _, s := range []string{password, wrong} {
			if strings.Contains(captured.String(), s) {
				t.Errorf("a secret appears in the command output")
			}
		}
	}()
	run := func(stdin string, env map[string]string, args ...string) (string, error) {
		t.Helper()
		out, errs, err := runPublish(t, stdin, env, args...)
		captured.WriteString(out + errs)
		if err != nil {
			captured.WriteString(err.Error())
		}
		return out, err
	}

	img, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()

	// push with --password-stdin, --debug: plain line naming ref and digest.
	dst := proxy.Host + "/cli/app:v1"
	out, err := run(password+"\n", nil, "push", "--username", "bob", "--password-stdin", "--debug", "oci:"+dir, dst)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(out); got != "pushed "+dst+"@"+want.String() {
		t.Errorf("push printed %q", got)
	}
	if !strings.Contains(captured.String(), "REDACTED") {
		t.Error("--debug logged no redacted Authorization header")
	}

	// copy --json, token through $REGISTRY_TOKEN as the password for bob.
	out, err = run("", map[string]string{"REGISTRY_TOKEN": password}, "copy", "--json", "--username", "bob", dst, proxy.Host+"/cli/copy:v1")
	if err != nil {
		t.Fatal(err)
	}
	var res struct{ Ref, Digest, MediaType string }
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Digest != want.String() {
		t.Errorf("copy --json printed %q (%v)", out, err)
	}

	// A wrong password fails with advice and no secret.
	_, err = run(wrong, nil, "copy", "--username", "bob", "--password-stdin", dst, proxy.Host+"/cli/wrong:v1")
	if err == nil || !strings.Contains(err.Error(), "check the credentials") {
		t.Errorf("wrong password: %v", err)
	}

	// index create: --require fails closed, then succeeds with both.
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	amd, _ := mutate.ConfigFile(img, cf)
	cf = cf.DeepCopy()
	cf.Architecture = "arm64"
	arm, _ := mutate.ConfigFile(img, cf)
	var refs []string
	for i, im := range []v1.Image{amd, arm} {
		d, _ := im.Digest()
		l := t.TempDir()
		lp, _ := layout.Write(l, empty.Index)
		if err := lp.AppendImage(im); err != nil {
			t.Fatal(err)
		}
		ref := reg.Host + "/cli/build@" + d.String()
		if _, err := run("", nil, "push", "oci:"+l, ref); err != nil {
			t.Fatalf("push image %d: %v", i, err)
		}
		refs = append(refs, ref)
	}
	reg.Sync(t)
	n := reg.Log.Len()
	_, err = run("", nil, "index", "create", reg.Host+"/cli/release:v1", "--from", refs[0], "--require", "linux/amd64,linux/arm64")
	if err == nil || !strings.Contains(err.Error(), "linux/arm64") {
		t.Errorf("index create without arm64: %v", err)
	}
	reg.Sync(t)
	if m := reg.Mutations(n); len(m) != 0 {
		t.Errorf("failed index create mutated the registry: %v", m)
	}
	out, err = run("", nil, "index", "create", reg.Host+"/cli/release:v1", "--from", refs[0], "--from", refs[1],
		"--require", "linux/amd64,linux/arm64", "--annotation", "org.opencontainers.image.version=1.0")
	if err != nil {
		t.Fatal(err)
	}
	if d := strings.TrimSpace(out); !strings.HasPrefix(d, "sha256:") || len(d) != 71 {
		t.Errorf("index create printed %q, want a digest", out)
	}
}
