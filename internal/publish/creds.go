package publish

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// CredOptions says where credentials come from. Keychain consults, in order:
//
//  1. Username and Password (the --username and --password-stdin flags);
//  2. Token, default $REGISTRY_TOKEN;
//  3. the docker config.json ($DOCKER_CONFIG/config.json, else
//     ~/.docker/config.json), then podman's auth.json ($REGISTRY_AUTH_FILE,
//     ${XDG_RUNTIME_DIR}/containers/auth.json,
//     ~/.config/containers/auth.json), each with its credential helpers
//     (credHelpers, credsStore);
//  4. TokenCommand.
//
// The first source with something for the registry wins. Sources 1, 2 and 4
// are given only to the registries in Registries.
//
// A token (from Token or TokenCommand) is a registry token: it is sent as
// "Authorization: Bearer TOKEN" on every request, without a token exchange.
// When Username is set without Password, the token is used as the password
// instead (as for GitHub or GitLab access tokens), so it goes through Basic
// auth or the Bearer token exchange. An "identitytoken" in a config file is
// an OAuth2 refresh token, exchanged with POST (GET fallback on 404).
type CredOptions struct {
	// Username for the registries in Registries. Default: none.
	Username string
	// Password goes with Username. Default: none.
	Password string
	// Token is a registry token (or, with Username, a password).
	// Default: $REGISTRY_TOKEN, read through Getenv.
	Token string
	// TokenCommand is run with "sh -c" when no other source has credentials;
	// its stdout, trimmed, is the token (or, with Username, the password).
	// It runs at most once per Keychain. Default: none.
	TokenCommand string
	// TokenCommandTimeout bounds TokenCommand. Default 30s.
	TokenCommandTimeout time.Duration
	// Registries are the registry hosts ("ghcr.io", "127.0.0.1:5000") that
	// Username/Password, Token and TokenCommand are sent to. Default (empty):
	// every registry. The command line sets it to the destination's registry
	// so a source registry never sees the destination's secret.
	Registries []string
	// Getenv reads the environment (REGISTRY_TOKEN, DOCKER_CONFIG,
	// REGISTRY_AUTH_FILE, XDG_RUNTIME_DIR, HOME). Default os.Getenv.
	Getenv func(string) string
	// Log receives debug lines naming the credential source chosen for a
	// registry, never a secret. Default: no logging.
	Log *slog.Logger
}

// Keychain returns the keychain described by opts.
func Keychain(opts CredOptions) authn.Keychain {
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	if opts.Token == "" {
		opts.Token = opts.Getenv("REGISTRY_TOKEN")
	}
	if opts.TokenCommandTimeout <= 0 {
		opts.TokenCommandTimeout = 30 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.New(discardHandler{})
	}
	return &keychain{opts: opts}
}

type keychain struct {
	opts CredOptions

	once   sync.Once
	cmdOut string
	cmdErr error
}

func (k *keychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	return k.ResolveContext(context.Background(), target)
}

// ResolveContext implements authn.ContextKeychain.
func (k *keychain) ResolveContext(ctx context.Context, target authn.Resource) (authn.Authenticator, error) {
	reg := target.RegistryStr()
	ours := k.forRegistry(reg)
	logSource := func(src string) {
		k.opts.Log.DebugContext(ctx, "credentials", "registry", reg, "source", src)
	}
	o := k.opts
	if ours && o.Username != "" && o.Password != "" {
		logSource("flags")
		return authn.FromConfig(authn.AuthConfig{Username: o.Username, Password: o.Password}), nil
	}
	if ours && o.Token != "" {
		logSource("token")
		return k.fromToken(o.Token), nil
	}
	cfg, src, err := k.fromFiles(target)
	if err != nil {
		return nil, err
	}
	if cfg != (authn.AuthConfig{}) {
		logSource(src)
		return authn.FromConfig(cfg), nil
	}
	if ours && o.TokenCommand != "" {
		k.once.Do(func() { k.cmdOut, k.cmdErr = runTokenCommand(ctx, o.TokenCommand, o.TokenCommandTimeout) })
		if k.cmdErr != nil {
			return nil, k.cmdErr
		}
		logSource("token command")
		return k.fromToken(k.cmdOut), nil
	}
	logSource("none")
	return authn.Anonymous, nil
}

func (k *keychain) forRegistry(reg string) bool {
	if len(k.opts.Registries) == 0 {
		return true
	}
	for _, r := range k.opts.Registries {
		if canonicalRegistry(r) == canonicalRegistry(reg) {
			return true
		}
	}
	return false
}

func canonicalRegistry(r string) string {
	if reg, err := name.NewRegistry(r); err == nil {
		return reg.RegistryStr()
	}
	return r
}

func (k *keychain) fromToken(tok string) authn.Authenticator {
	if k.opts.Username != "" {
		return authn.FromConfig(authn.AuthConfig{Username: k.opts.Username, Password: tok})
	}
	return authn.FromConfig(authn.AuthConfig{RegistryToken: tok})
}

// configFiles lists the docker and podman credential files, in order.
func (k *keychain) configFiles() []struct{ path, kind string } {
	env := k.opts.Getenv
	var out []struct{ path, kind string }
	add := func(p, kind string) {
		if p != "" {
			out = append(out, struct{ path, kind string }{p, kind})
		}
	}
	home := env("HOME")
	if d := env("DOCKER_CONFIG"); d != "" {
		add(filepath.Join(d, "config.json"), "docker config")
	} else if home != "" {
		add(filepath.Join(home, ".docker", "config.json"), "docker config")
	}
	add(env("REGISTRY_AUTH_FILE"), "podman auth file")
	if x := env("XDG_RUNTIME_DIR"); x != "" {
		add(filepath.Join(x, "containers", "auth.json"), "podman auth file")
	}
	if home != "" {
		add(filepath.Join(home, ".config", "containers", "auth.json"), "podman auth file")
	}
	return out
}

// fromFiles looks the target up in the docker and podman files, the
// repository first, then the registry (as docker and ggcr do).
func (k *keychain) fromFiles(target authn.Resource) (authn.AuthConfig, string, error) {
	for _, f := range k.configFiles() {
		cf, err := loadConfig(f.path)
		if err != nil {
			return authn.AuthConfig{}, "", err
		}
		if cf == nil {
			continue
		}
		for _, key := range []string{target.String(), target.RegistryStr()} {
			if key == name.DefaultRegistry {
				key = authn.DefaultAuthKey
			}
			ac, err := cf.GetAuthConfig(key)
			if err != nil {
				return authn.AuthConfig{}, "", fmt.Errorf("%s %s: credential helper for %s: %w (check the helper is installed and logged in)",
					f.kind, f.path, key, redactErr(err))
			}
			cfg := authn.AuthConfig{Username: ac.Username, Password: ac.Password, Auth: ac.Auth,
				IdentityToken: ac.IdentityToken, RegistryToken: ac.RegistryToken}
			if cfg != (authn.AuthConfig{}) {
				return cfg, f.kind, nil
			}
		}
	}
	return authn.AuthConfig{}, "", nil
}

func loadConfig(path string) (*configfile.ConfigFile, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read credentials: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return nil, nil
	}
	cf, err := config.LoadFromReader(f)
	if err != nil {
		// The decoder's message may quote the file; never pass it on.
		return nil, fmt.Errorf("parse credentials file %s: invalid JSON or auth entry (fix or move the file)", path)
	}
	cf.Filename = path
	return cf, nil
}

// redactErr keeps only the class of a helper error: helper messages are not
// ours and could echo what they were given.
func redactErr(err error) error {
	msg := err.Error()
	if len(msg) > 200 {
		msg = msg[:200]
	}
	return errors.New(msg)
}

// runTokenCommand runs cmd with sh -c and returns its trimmed stdout.
// Neither its output nor its stderr appears in errors.
func runTokenCommand(ctx context.Context, cmd string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := exec.CommandContext(ctx, "sh", "-c", cmd)
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.Cancel = func() error { return syscall.Kill(-c.Process.Pid, syscall.SIGKILL) }
	c.WaitDelay = time.Second
	var out bytes.Buffer
	c.Stdout = &out
	c.Stderr = nil
	err := c.Run()
	if ctx.Err() == context.DeadlineExceeded {
		return "", fmt.Errorf("token command timed out after %v: run it by hand to check it does not prompt", timeout)
	}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("token command failed with exit code %d: run it by hand to see why", ee.ExitCode())
		}
		return "", fmt.Errorf("token command: %w", err)
	}
	tok := strings.TrimSpace(out.String())
	if tok == "" {
		return "", errors.New("token command printed nothing: it must print the token on stdout")
	}
	return tok, nil
}

// HasCredential reports whether kc has any credential for registry (a host
// such as "ghcr.io" or "127.0.0.1:5000"). It may run a token command.
func HasCredential(ctx context.Context, kc authn.Keychain, registry string) (bool, error) {
	reg, err := name.NewRegistry(registry)
	if err != nil {
		return false, fmt.Errorf("registry %q: %w", registry, err)
	}
	auth, err := authn.Resolve(ctx, kc, reg)
	if err != nil {
		return false, err
	}
	if auth == authn.Anonymous {
		return false, nil
	}
	cfg, err := authn.Authorization(ctx, auth)
	if err != nil {
		return false, err
	}
	return cfg.RegistryToken != "" || cfg.IdentityToken != "" || cfg.Auth != "" ||
		(cfg.Username != "" && cfg.Password != ""), nil
}
