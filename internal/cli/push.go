package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"

	"strata/internal/publish"
)

// remoteFlags are the flags every command that talks to registries shares.
type remoteFlags struct {
	jobs          int
	insecure      bool
	username      string
	passwordStdin bool
	tokenCommand  string
	tokenTimeout  time.Duration
	json          bool
	debug         bool
}

func (f *remoteFlags) add(cmd *cobra.Command, withJobs bool) {
	f.addCreds(cmd, withJobs)
	cmd.Flags().BoolVar(&f.json, "json", false, "print a JSON summary instead of plain lines")
}

// addCreds adds the transport and credential flags, without --json (for
// build, which has its own).
func (f *remoteFlags) addCreds(cmd *cobra.Command, withJobs bool) {
	fl := cmd.Flags()
	if withJobs {
		fl.IntVar(&f.jobs, "jobs", 4, "blobs transferred at once")
	}
	fl.BoolVar(&f.insecure, "insecure", false, "allow plain HTTP and unverified TLS to any registry (plain HTTP to localhost and 127.0.0.0/8 is always allowed)")
	fl.StringVar(&f.username, "username", "", "user name for the destination registry (with --password-stdin, $REGISTRY_TOKEN or --token-command as the password)")
	fl.BoolVar(&f.passwordStdin, "password-stdin", false, "read the destination registry's password from stdin")
	fl.StringVar(&f.tokenCommand, "token-command", "", "command run with sh -c when no other credential is found; its stdout is the token (or the password, with --username)")
	fl.DurationVar(&f.tokenTimeout, "token-command-timeout", 30*time.Second, "time limit for --token-command")
	fl.BoolVar(&f.debug, "debug", false, "log every HTTP request (credentials redacted) at debug level")
}

// logger returns the logger for the library: env.Log, or a debug-level one
// in the same format with --debug.
func (f *remoteFlags) logger(cmd *cobra.Command, env *Env) *slog.Logger {
	if !f.debug {
		return env.Log
	}
	opts := &slog.HandlerOptions{Level: slog.LevelDebug}
	if fl := cmd.Flag("log-format"); fl != nil && fl.Value.String() == "text" {
		return slog.New(slog.NewTextHandler(env.Stderr, opts))
	}
	return slog.New(slog.NewJSONHandler(env.Stderr, opts))
}

// keychain builds the credentials for the registries among locs (the
// destination first; a source only when the destination is local): flag
// and token credentials go to those registries only, so a source registry
// never sees the destination's secret.
func (f *remoteFlags) keychain(cmd *cobra.Command, env *Env, log *slog.Logger, locs ...string) (authn.Keychain, error) {
	opts := publish.CredOptions{
		Username:            f.username,
		TokenCommand:        f.tokenCommand,
		TokenCommandTimeout: f.tokenTimeout,
		Getenv:              env.Getenv,
		Log:                 log,
	}
	if f.passwordStdin {
		if f.username == "" {
			return nil, errors.New("--password-stdin needs --username")
		}
		b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 64<<10))
		if err != nil {
			return nil, fmt.Errorf("read password from stdin: %w", err)
		}
		opts.Password = string(bytes.TrimRight(b, "\r\n"))
		if opts.Password == "" {
			return nil, errors.New("--password-stdin: stdin was empty: pipe the password in")
		}
	}
	for _, s := range locs {
		loc, err := publish.ParseLocation(s, f.insecure)
		if err != nil {
			return nil, err
		}
		if loc.Kind == publish.KindRegistry {
			opts.Registries = append(opts.Registries, loc.Reference.Context().RegistryStr())
		}
	}
	if len(opts.Registries) == 0 {
		// No registry at all: the flags have nowhere to go.
		opts.Registries = []string{"none.invalid"}
	}
	return publish.Keychain(opts), nil
}

// print writes a result as a plain line or JSON.
func (f *remoteFlags) print(env *Env, verb string, r publish.Result) error {
	if f.json {
		enc := json.NewEncoder(env.Stdout)
		return enc.Encode(r)
	}
	_, err := fmt.Fprintf(env.Stdout, "%s %s@%s\n", verb, refWithoutDigest(r.Ref), r.Digest)
	return err
}

// writeDigestFile writes digest and a newline to path, when path is set.
func writeDigestFile(path, digest string) error {
	if path == "" {
		return nil
	}
	if err := os.WriteFile(path, []byte(digest+"\n"), 0o644); err != nil {
		return fmt.Errorf("--digest-file: %w", err)
	}
	return nil
}

func refWithoutDigest(s string) string {
	if d, err := name.NewDigest(s); err == nil {
		return d.Context().String()
	}
	return s
}

// copyCommand builds push and copy, which differ only in their help.
func copyCommand(env *Env, use, short, long, verb string) *cobra.Command {
	var f remoteFlags
	var chunk int64
	var platform, digestFile string
	var referrers, dryRun bool
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			log := f.logger(cmd, env)
			credsFor := []string{args[1]}
			if loc, err := publish.ParseLocation(args[1], f.insecure); err == nil && loc.Kind != publish.KindRegistry {
				credsFor = append(credsFor, args[0])
			}
			kc, err := f.keychain(cmd, env, log, credsFor...)
			if err != nil {
				return err
			}
			opts := publish.CopyOptions{
				Jobs: f.jobs, Insecure: f.insecure, Keychain: kc, ChunkSize: chunk, Log: log, NoReferrers: !referrers,
			}
			if platform != "" {
				p, err := publish.ParsePlatform(platform)
				if err != nil {
					return fmt.Errorf("--platform: %w", err)
				}
				opts.Platform = &p
			}
			opts.DryRun = dryRun
			r, err := publish.Copy(cmd.Context(), args[0], args[1], opts)
			if err != nil {
				return err
			}
			if err := writeDigestFile(digestFile, r.Digest); err != nil {
				return err
			}
			if dryRun && !f.json {
				_, err := fmt.Fprintf(env.Stdout, "dry run: would push %s@%s with %d referrers (nothing was pushed)\n", refWithoutDigest(r.Ref), r.Digest, len(r.Referrers))
				return err
			}
			return f.print(env, verb, r)
		},
	}
	f.add(cmd, true)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "read and check the source, print what would be pushed, push nothing")
	cmd.Flags().StringVar(&digestFile, "digest-file", "", "write the digest of what was pushed to this file (for the index step of a release)")
	cmd.Flags().StringVar(&platform, "platform", "", "copy the image of this platform (os/arch[/variant]) from a source holding several: a layout, an archive or an index (default: the source must hold one image or index)")
	cmd.Flags().BoolVar(&referrers, "referrers", true, "bring the source's referrers (SBOMs, signatures) along; --referrers=false leaves them behind")
	cmd.Flags().Int64Var(&chunk, "chunk-size", 0, "upload blobs larger than this many bytes in chunks (0: one request per blob, chunks only if the registry refuses it)")
	return cmd
}

const sourcesHelp = `SRC is one of:
  oci:DIR[:REF]                  an OCI layout (REF: a ref.name or a digest)
  docker-archive:FILE[:REPO:TAG] a docker save / docker-archive tarball
  REGISTRY/REPO[:TAG|@DIGEST]    an image or index in a registry

An image stays an image: a layout written by strata build holds the image and
its SBOM, and the image goes under DST's tag while the SBOM becomes its
referrer (subject = the image), through the referrers API or, on registries
without it, the referrers tag schema. A source holding several images needs
--platform, else the error lists them. Referrers of what is copied come along
(--referrers=false leaves them behind); DST's tag moves only after them.

Digests are preserved (an index is copied with all its children byte for byte),
blobs already in the destination are skipped and blobs in another repository of
the same registry are mounted. Requests failing with 408, 429 or 5xx are retried
with back-off, honouring Retry-After.

Credentials for the destination, first found wins: --username with
--password-stdin; $REGISTRY_TOKEN (a registry token sent as Bearer, or the
password with --username); docker config.json ($DOCKER_CONFIG) and podman
auth.json ($REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json) with
their credential helpers; --token-command. Other registries use the files only.`

func init() {
	register(func(env *Env) *cobra.Command {
		return copyCommand(env, "push SRC DST", "Push a local image (OCI layout, docker-archive) and its SBOM to a registry",
			"Push SRC to the registry reference DST.\n\n"+sourcesHelp, "pushed")
	})
}
