package publish

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"strata/test/registries"
)

// Secrets used by the auth tests; none may ever show in output, logs or
// errors.
const (
	secretPassword = "pw-Zq7c1Lk9Xa"
	wrongPassword  = "pw-WRONG-h2Gd8u"
	staticToken    = "tok-static-8fJ2mQ4v"
	refreshToken   = "tok-refresh-Yb3n6Pq1"
	commandToken   = "tok-command-Kp5s0Wd7"
)

var allSecrets = []string{secretPassword, wrongPassword, staticToken, refreshToken, commandToken,
	base64.StdEncoding.EncodeToString([]byte("alice:" + secretPassword)),
	base64.StdEncoding.EncodeToString([]byte("alice:" + wrongPassword))}

func writeDockerConfig(t *testing.T, auths map[string]map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	b, err := json.Marshal(map[string]any{"auths": auths})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestBasicAuthDockerConfig(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	reg := registries.StartDistribution(t, registries.DistributionOptions{Users: map[string]string{"alice": secretPassword}})
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	src := writeLayout(t, img)
	log, logs := debugLogger()
	texts := map[string]string{}
	defer func() { texts["debug log"] = logs.String(); assertNoSecret(t, allSecrets, texts) }()

	// Anonymous: refused, nothing written.
	_, err = Copy(ctx, src, reg.Host+"/basic/app:v1", CopyOptions{Keychain: Keychain(CredOptions{Getenv: noEnv()}), Log: log})
	if err == nil || !strings.Contains(err.Error(), "check the credentials") {
		t.Errorf("anonymous push: %v, want an error saying to check the credentials", err)
	}

	// Right password in a docker config.json found through $DOCKER_CONFIG.
	good := writeDockerConfig(t, map[string]map[string]string{
		reg.Host: {"auth": base64.StdEncoding.EncodeToString([]byte("alice:" + secretPassword))}})
	kc := Keychain(CredOptions{Getenv: noEnv("DOCKER_CONFIG", good), Log: log})
	if ok, err := HasCredential(ctx, kc, reg.Host); err != nil || !ok {
		t.Errorf("HasCredential = %v, %v; want true", ok, err)
	}
	res, err := Copy(ctx, src, reg.Host+"/basic/app:v1", CopyOptions{Keychain: kc, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != mustDigest(t, img) {
		t.Errorf("digest %s, want %s", res.Digest, mustDigest(t, img))
	}

	// Wrong password: a clear error, no mutation, no password in the error.
	reg.Sync(t)
	n := reg.Log.Len()
	bad := writeDockerConfig(t, map[string]map[string]string{
		reg.Host: {"username": "alice", "password": wrongPassword}})
	img2, _ := random.Image(1024, 1)
	_, err = Copy(ctx, writeLayout(t, img2), reg.Host+"/basic/app:v2",
		CopyOptions{Keychain: Keychain(CredOptions{Getenv: noEnv("DOCKER_CONFIG", bad)}), Log: log})
	if err == nil {
		t.Fatal("push with a wrong password succeeded")
	}
	texts["wrong password error"] = err.Error()
	if !strings.Contains(err.Error(), "authentication refused") || !strings.Contains(err.Error(), "check the credentials") {
		t.Errorf("error %q does not say the credentials were refused", err)
	}
	reg.Sync(t)
	if m := reg.Mutations(n); len(m) != 0 {
		t.Errorf("a push with a wrong password sent mutating requests: %v", m)
	}

	// Podman's auth.json ($REGISTRY_AUTH_FILE) when no docker config has it.
	authFile := filepath.Join(writeDockerConfig(t, map[string]map[string]string{
		reg.Host: {"auth": base64.StdEncoding.EncodeToString([]byte("alice:" + secretPassword))}}), "config.json")
	empty := writeDockerConfig(t, map[string]map[string]string{"other.example": {"auth": "eDp5"}})
	kc = Keychain(CredOptions{Getenv: noEnv("DOCKER_CONFIG", empty, "REGISTRY_AUTH_FILE", authFile)})
	if _, err := Copy(ctx, src, reg.Host+"/basic/app:v3", CopyOptions{Keychain: kc}); err != nil {
		t.Errorf("push with podman auth.json: %v", err)
	}
}

// bearerSetup is docker-registry behind a proxy enforcing the token flow.
func bearerSetup(t *testing.T, noPOST bool) (*registries.Distribution, *registries.Proxy) {
	reg := registries.StartDistribution(t, registries.DistributionOptions{})
	p := registries.StartProxy(t, reg.Host, registries.ProxyOptions{Bearer: &registries.BearerOptions{
		Users:         map[string]string{"alice": secretPassword},
		RefreshTokens: []string{refreshToken},
		StaticTokens:  []string{staticToken},
		NoPOST:        noPOST,
	}})
	return reg, p
}

func tokenCalls(p *registries.Proxy, method, grant string, status int) int {
	n := 0
	for _, tr := range p.TokenRequests() {
		if tr.Method == method && tr.GrantType == grant && tr.Status == status {
			n++
		}
	}
	return n
}

func TestBearerFlow(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	src := writeLayout(t, img)
	log, logs := debugLogger()
	texts := map[string]string{}
	defer func() { texts["debug log"] = logs.String(); assertNoSecret(t, allSecrets, texts) }()

	push := func(t *testing.T, host, repo string, co CredOptions) error {
		t.Helper()
		if co.Getenv == nil {
			co.Getenv = noEnv()
		}
		co.Log = log
		res, err := Copy(ctx, src, host+"/"+repo+":v1", CopyOptions{Keychain: Keychain(co), Log: log})
		if err == nil && res.Digest != mustDigest(t, img) {
			t.Errorf("digest %s, want %s", res.Digest, mustDigest(t, img))
		}
		if err != nil {
			texts[t.Name()+" error"] = err.Error()
		}
		return err
	}

	t.Run("password POST", func(t *testing.T) {
		_, p := bearerSetup(t, false)
		if err := push(t, p.Host, "bearer/post", CredOptions{Username: "alice", Password: secretPassword}); err != nil {
			t.Fatal(err)
		}
		if tokenCalls(p, "POST", "password", 200) == 0 {
			t.Errorf("no password grant POST: %+v", p.TokenRequests())
		}
		if n := tokenCalls(p, "GET", "", 200); n != 0 {
			t.Errorf("%d GET token requests although POST works", n)
		}
	})
	t.Run("GET fallback", func(t *testing.T) {
		_, p := bearerSetup(t, true)
		if err := push(t, p.Host, "bearer/get", CredOptions{Username: "alice", Password: secretPassword}); err != nil {
			t.Fatal(err)
		}
		if tokenCalls(p, "POST", "", 404) == 0 || tokenCalls(p, "GET", "", 200) == 0 {
			t.Errorf("want a refused POST then a GET: %+v", p.TokenRequests())
		}
	})
	t.Run("identity token POST", func(t *testing.T) {
		_, p := bearerSetup(t, false)
		cfg := writeDockerConfig(t, map[string]map[string]string{p.Host: {"identitytoken": refreshToken}})
		if err := push(t, p.Host, "bearer/identity", CredOptions{Getenv: noEnv("DOCKER_CONFIG", cfg)}); err != nil {
			t.Fatal(err)
		}
		if tokenCalls(p, "POST", "refresh_token", 200) == 0 {
			t.Errorf("no refresh_token grant POST: %+v", p.TokenRequests())
		}
	})
	t.Run("REGISTRY_TOKEN", func(t *testing.T) {
		_, p := bearerSetup(t, false)
		if err := push(t, p.Host, "bearer/env", CredOptions{Getenv: noEnv("REGISTRY_TOKEN", staticToken)}); err != nil {
			t.Fatal(err)
		}
		if n := len(p.TokenRequests()); n != 0 {
			t.Errorf("a registry token needs no exchange, got %d token requests", n)
		}
	})
	t.Run("token command", func(t *testing.T) {
		_, p := bearerSetup(t, false)
		co := CredOptions{TokenCommand: "printf '%s\\n' " + commandToken[:4] + "'" + commandToken[4:] + "'", Username: "alice"}
		// The command's output is the password for alice here: wrong.
		if err := push(t, p.Host, "bearer/cmd", co); err == nil {
			t.Error("token command printing a wrong password succeeded")
		}
		co = CredOptions{TokenCommand: "echo " + staticToken}
		if err := push(t, p.Host, "bearer/cmd", co); err != nil {
			t.Fatal(err)
		}
		co = CredOptions{TokenCommand: "echo " + secretPassword + " >&2; exit 3"}
		err := push(t, p.Host, "bearer/cmd", co)
		if err == nil || !strings.Contains(err.Error(), "exit code 3") {
			t.Errorf("failing token command: %v, want its exit code", err)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		reg, p := bearerSetup(t, false)
		err := push(t, p.Host, "bearer/wrong", CredOptions{Username: "alice", Password: wrongPassword})
		if err == nil || !strings.Contains(err.Error(), "check the credentials") {
			t.Fatalf("wrong password: %v, want an error saying to check the credentials", err)
		}
		reg.Sync(t)
		if m := reg.Mutations(0); len(m) != 0 {
			t.Errorf("wrong password reached the registry with %v", m)
		}
	})
	t.Run("scoped to destination", func(t *testing.T) {
		// Flag credentials for another registry are never sent here.
		_, p := bearerSetup(t, false)
		err := push(t, p.Host, "bearer/scope", CredOptions{Username: "alice", Password: secretPassword, Registries: []string{"ghcr.io"}})
		if err == nil {
			t.Error("credentials scoped to ghcr.io were used for the test registry")
		}
		if n := len(p.TokenRequests()); n != 0 && tokenCalls(p, "GET", "", 401) != n {
			t.Errorf("credentials were sent: %+v", p.TokenRequests())
		}
	})
}

func TestHasCredential(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := writeDockerConfig(t, map[string]map[string]string{"reg.example": {"auth": base64.StdEncoding.EncodeToString([]byte("u:p"))}})
	for _, tc := range []struct {
		name string
		co   CredOptions
		reg  string
		want bool
	}{
		{"none", CredOptions{Getenv: noEnv()}, "ghcr.io", false},
		{"flags", CredOptions{Getenv: noEnv(), Username: "u", Password: "p"}, "ghcr.io", true},
		{"flags other registry", CredOptions{Getenv: noEnv(), Username: "u", Password: "p", Registries: []string{"quay.io"}}, "ghcr.io", false},
		{"env token", CredOptions{Getenv: noEnv("REGISTRY_TOKEN", "t")}, "ghcr.io", true},
		{"docker config hit", CredOptions{Getenv: noEnv("DOCKER_CONFIG", cfg)}, "reg.example", true},
		{"docker config miss", CredOptions{Getenv: noEnv("DOCKER_CONFIG", cfg)}, "ghcr.io", false},
		{"xdg auth.json", CredOptions{Getenv: noEnv("XDG_RUNTIME_DIR", xdgWith(t, "reg.example"))}, "reg.example", true},
		{"token command", CredOptions{Getenv: noEnv(), TokenCommand: "echo t"}, "ghcr.io", true},
	} {
		got, err := HasCredential(ctx, Keychain(tc.co), tc.reg)
		if err != nil || got != tc.want {
			t.Errorf("%s: HasCredential = %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
	// An empty token command output is an error, not an empty credential.
	if _, err := HasCredential(ctx, Keychain(CredOptions{Getenv: noEnv(), TokenCommand: "true"}), "ghcr.io"); err == nil {
		t.Error("token command printing nothing: no error")
	}
}

func TestCredentialHelper(t *testing.T) {
	// Not parallel: the helper is found through $PATH.
	bin := t.TempDir()
	helper := "#!/bin/sh\nread server\nprintf '{\"ServerURL\":\"%s\",\"Username\":\"h\",\"Secret\":\"" + secretPassword + "\"}' \"$server\"\n"
	if err := os.WriteFile(filepath.Join(bin, "docker-credential-strata-test"), []byte(helper), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"credHelpers":{"reg.example":"strata-test"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	auth, err := authn.Resolve(context.Background(), Keychain(CredOptions{Getenv: noEnv("DOCKER_CONFIG", dir)}), mustRegistry(t, "reg.example"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := auth.Authorization()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Username != "h" || cfg.Password != secretPassword {
		t.Errorf("helper credentials not used: user %q", cfg.Username)
	}
}

func xdgWith(t *testing.T, host string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "containers"), 0o700); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{"auths": map[string]any{host: map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte("u:p"))}}})
	if err := os.WriteFile(filepath.Join(dir, "containers", "auth.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func mustRegistry(t *testing.T, r string) name.Registry {
	t.Helper()
	reg, err := name.NewRegistry(r)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}
