package publish

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// The named blockers of a preflight.
const (
	// BlockerRegistryDown: /v2/ could not be reached or answered 5xx.
	BlockerRegistryDown = "registry-down"
	// BlockerEmptyToken: the registry wants credentials and none is found.
	BlockerEmptyToken = "empty-token"
	// BlockerAuthRefused: the credentials found were refused.
	BlockerAuthRefused = "auth-refused"
)

// BlockerError stops a release before any mutation. Its message starts
// with BLOCKER(Name) so scripts can grep for it.
type BlockerError struct {
	// Name is one of the Blocker constants.
	Name string
	// Registry is the registry host.
	Registry string
	Err      error
}

func (e *BlockerError) Error() string {
	return fmt.Sprintf("BLOCKER(%s): %s: %v", e.Name, e.Registry, e.Err)
}

func (e *BlockerError) Unwrap() error { return e.Err }

// PreflightOptions configures Preflight.
type PreflightOptions struct {
	// Keychain supplies credentials. Default: Keychain(CredOptions{}).
	Keychain authn.Keychain
	// Insecure: see CopyOptions. Default false.
	Insecure bool
	// Retry bounds retries of each request; at most 3 attempts are made
	// whatever it says, so a registry that is down is reported quickly.
	// Default: see RetryOptions.
	Retry RetryOptions
	// Timeout bounds each request. Default 30s.
	Timeout time.Duration
	// Log receives debug lines. Default: no logging.
	Log *slog.Logger
}

// PreflightResult is what Preflight learnt.
type PreflightResult struct {
	// Anonymous is set when /v2/ answered 200 without credentials.
	Anonymous bool
	// HasCredential is set when the keychain has a credential for the
	// registry.
	HasCredential bool
}

// Preflight checks repo's registry before a release mutates it, with GET
// requests only:
//
//   - GET /v2/ without credentials: no answer, or 5xx, is
//     BLOCKER(registry-down);
//   - 200: the registry takes anonymous requests; credentials are used when
//     the keychain has some, and the release may go on without;
//   - 401: without a credential for the registry (HasCredential) it is
//     BLOCKER(empty-token); with one, the credential is tried for push
//     access to repo (the Basic or Bearer handshake and an authenticated
//     GET /v2/), and a refusal is BLOCKER(auth-refused).
//
// Like ggcr, it tries https first and falls back to http for hosts where
// ggcr would (loopback, or Insecure).
func Preflight(ctx context.Context, repo string, opts PreflightOptions) (PreflightResult, error) {
	var nopts []name.Option
	if opts.Insecure {
		nopts = append(nopts, name.Insecure)
	}
	r, err := name.NewRepository(repo, nopts...)
	if err != nil {
		return PreflightResult{}, fmt.Errorf("repository %q: %w (want REGISTRY/REPOSITORY)", repo, err)
	}
	reg := r.Registry
	host := reg.RegistryStr()
	if opts.Keychain == nil {
		opts.Keychain = Keychain(CredOptions{})
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	retry := opts.Retry.withDefaults()
	retry.Attempts = min(retry.Attempts, 3)
	rt := newTransport(transportOptions{Insecure: opts.Insecure, Retry: retry, Log: opts.Log})
	client := &http.Client{Transport: rt, Timeout: opts.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	schemes := []string{"https"}
	if reg.Scheme() == "http" {
		schemes = append(schemes, "http")
	}
	var (
		status int
		scheme string
		errs   []error
	)
	for _, s := range schemes {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s+"://"+host+"/v2/", nil)
		if err != nil {
			return PreflightResult{}, err
		}
		resp, err := client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return PreflightResult{}, ctx.Err()
			}
			errs = append(errs, fmt.Errorf("%s: %w", s, err))
			continue
		}
		drain(resp)
		status, scheme = resp.StatusCode, s
		break
	}
	down := func(err error) error {
		return &BlockerError{Name: BlockerRegistryDown, Registry: host, Err: err}
	}
	switch {
	case status == 0:
		return PreflightResult{}, down(fmt.Errorf("GET /v2/ failed: %w (check the address in repository and that the registry is up)", errors.Join(errs...)))
	case status >= 500:
		return PreflightResult{}, down(fmt.Errorf("GET /v2/ answered %d %s (the registry is failing: try again later or ask its operators)", status, http.StatusText(status)))
	}
	has, err := HasCredential(ctx, opts.Keychain, host)
	if err != nil {
		return PreflightResult{}, &BlockerError{Name: BlockerEmptyToken, Registry: host,
			Err: fmt.Errorf("looking up credentials: %w", err)}
	}
	res := PreflightResult{Anonymous: status == http.StatusOK, HasCredential: has}
	switch status {
	case http.StatusOK:
		return res, nil
	case http.StatusUnauthorized, http.StatusForbidden:
	default:
		return res, down(fmt.Errorf("GET /v2/ answered %d %s, not a registry's 200 or 401 (check the address in repository)", status, http.StatusText(status)))
	}
	if !has {
		return res, &BlockerError{Name: BlockerEmptyToken, Registry: host,
			Err: errors.New("the registry asks for credentials and none was found: docker/podman login, set $REGISTRY_TOKEN, or pass --username with --password-stdin or --token-command")}
	}
	// Try the credential: the handshake (token exchange for Bearer) and an
	// authenticated GET /v2/.
	auth, err := authn.Resolve(ctx, opts.Keychain, reg)
	if err != nil {
		return res, &BlockerError{Name: BlockerEmptyToken, Registry: host, Err: fmt.Errorf("looking up credentials: %w", err)}
	}
	refused := func(err error) error {
		return &BlockerError{Name: BlockerAuthRefused, Registry: host,
			Err: fmt.Errorf("%w (check the user name and password or token, and that it may push to %s)", err, r.RepositoryStr())}
	}
	tr, err := transport.NewWithContext(ctx, reg, auth, rt, []string{r.Scope(transport.PushScope)})
	if err != nil {
		var te *transport.Error
		if errors.As(err, &te) && te.StatusCode >= 500 {
			return res, down(fmt.Errorf("token service: %w", err))
		}
		if errors.As(err, &te) && (te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden) {
			return res, refused(errors.New("credentials refused by the token service"))
		}
		return res, refused(fmt.Errorf("authentication: %w", err))
	}
	ac := &http.Client{Transport: tr, Timeout: opts.Timeout}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+host+"/v2/", nil)
	if err != nil {
		return res, err
	}
	resp, err := ac.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		return res, refused(fmt.Errorf("authenticated GET /v2/: %w", err))
	}
	drain(resp)
	switch {
	case resp.StatusCode == http.StatusOK:
		return res, nil
	case resp.StatusCode >= 500:
		return res, down(fmt.Errorf("authenticated GET /v2/ answered %d", resp.StatusCode))
	default:
		return res, refused(fmt.Errorf("credentials refused: GET /v2/ answered %d %s", resp.StatusCode, http.StatusText(resp.StatusCode)))
	}
}
