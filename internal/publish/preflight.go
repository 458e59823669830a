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
	p, err := newPreflight(repo, opts)
	if err != nil {
		return PreflightResult{}, err
	}
	status, scheme, err := p.probe(ctx)
	if err != nil {
		return PreflightResult{}, err
	}
	has, err := HasCredential(ctx, p.opts.Keychain, p.host)
	if err != nil {
		return PreflightResult{}, &BlockerError{Name: BlockerEmptyToken, Registry: p.host,
			Err: fmt.Errorf("looking up credentials: %w", err)}
	}
	res := PreflightResult{Anonymous: status == http.StatusOK, HasCredential: has}
	switch status {
	case http.StatusOK:
		return res, nil
	case http.StatusUnauthorized, http.StatusForbidden:
	default:
		return res, p.down(fmt.Errorf("GET /v2/ answered %d %s, not a registry's 200 or 401 (check the address in repository)", status, http.StatusText(status)))
	}
	if !has {
		return res, &BlockerError{Name: BlockerEmptyToken, Registry: p.host,
			Err: errors.New("the registry asks for credentials and none was found: docker/podman login, set $REGISTRY_TOKEN, or pass --username with --password-stdin or --token-command")}
	}
	return res, p.tryCredential(ctx, scheme)
}

// preflight is one Preflight: the repository, its registry and the
// transport of every request.
type preflight struct {
	repo name.Repository
	host string
	opts PreflightOptions
	rt   http.RoundTripper
}

func newPreflight(repo string, opts PreflightOptions) (*preflight, error) {
	var nopts []name.Option
	if opts.Insecure {
		nopts = append(nopts, name.Insecure)
	}
	r, err := name.NewRepository(repo, nopts...)
	if err != nil {
		return nil, fmt.Errorf("repository %q: %w (want REGISTRY/REPOSITORY)", repo, err)
	}
	if opts.Keychain == nil {
		opts.Keychain = Keychain(CredOptions{})
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	retry := opts.Retry.withDefaults()
	retry.Attempts = min(retry.Attempts, 3)
	rt := newTransport(transportOptions{Insecure: opts.Insecure, Retry: retry, Log: opts.Log})
	return &preflight{repo: r, host: r.Registry.RegistryStr(), opts: opts, rt: rt}, nil
}

// down is BLOCKER(registry-down).
func (p *preflight) down(err error) error {
	return &BlockerError{Name: BlockerRegistryDown, Registry: p.host, Err: err}
}

// refused is BLOCKER(auth-refused).
func (p *preflight) refused(err error) error {
	return &BlockerError{Name: BlockerAuthRefused, Registry: p.host,
		Err: fmt.Errorf("%w (check the user name and password or token, and that it may push to %s)", err, p.repo.RepositoryStr())}
}

// probe sends GET /v2/ without credentials, over https, then http where
// ggcr would use it, and returns the first answer's status and scheme; no
// answer, or 5xx, is BLOCKER(registry-down).
func (p *preflight) probe(ctx context.Context) (status int, scheme string, err error) {
	client := &http.Client{Transport: p.rt, Timeout: p.opts.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	schemes := []string{"https"}
	if p.repo.Registry.Scheme() == "http" {
		schemes = append(schemes, "http")
	}
	var errs []error
	for _, s := range schemes {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s+"://"+p.host+"/v2/", nil)
		if err != nil {
			return 0, "", err
		}
		resp, err := client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return 0, "", ctx.Err()
			}
			errs = append(errs, fmt.Errorf("%s: %w", s, err))
			continue
		}
		drain(resp)
		status, scheme = resp.StatusCode, s
		break
	}
	switch {
	case status == 0:
		return 0, "", p.down(fmt.Errorf("GET /v2/ failed: %w (check the address in repository and that the registry is up)", errors.Join(errs...)))
	case status >= 500:
		return 0, "", p.down(fmt.Errorf("GET /v2/ answered %d %s (the registry is failing: try again later or ask its operators)", status, http.StatusText(status)))
	}
	return status, scheme, nil
}

// tryCredential tries the keychain's credential for push access: the
// handshake (token exchange for Bearer) and an authenticated GET /v2/.
func (p *preflight) tryCredential(ctx context.Context, scheme string) error {
	auth, err := authn.Resolve(ctx, p.opts.Keychain, p.repo.Registry)
	if err != nil {
		return &BlockerError{Name: BlockerEmptyToken, Registry: p.host, Err: fmt.Errorf("looking up credentials: %w", err)}
	}
	tr, err := transport.NewWithContext(ctx, p.repo.Registry, auth, p.rt, []string{p.repo.Scope(transport.PushScope)})
	if err != nil {
		var te *transport.Error
		if errors.As(err, &te) && te.StatusCode >= 500 {
			return p.down(fmt.Errorf("token service: %w", err))
		}
		if errors.As(err, &te) && (te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden) {
			return p.refused(errors.New("credentials refused by the token service"))
		}
		return p.refused(fmt.Errorf("authentication: %w", err))
	}
	ac := &http.Client{Transport: tr, Timeout: p.opts.Timeout}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+p.host+"/v2/", nil)
	if err != nil {
		return err
	}
	resp, err := ac.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return p.refused(fmt.Errorf("authenticated GET /v2/: %w", err))
	}
	drain(resp)
	switch {
	case resp.StatusCode == http.StatusOK:
		return nil
	case resp.StatusCode >= 500:
		return p.down(fmt.Errorf("authenticated GET /v2/ answered %d", resp.StatusCode))
	default:
		return p.refused(fmt.Errorf("credentials refused: GET /v2/ answered %d %s", resp.StatusCode, http.StatusText(resp.StatusCode)))
	}
}
