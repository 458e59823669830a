package cli

import (
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"strata/internal/publish"
)

func init() {
	register(func(env *Env) *cobra.Command {
		idx := &cobra.Command{
			Use:   "index",
			Short: "Assemble OCI image indexes",
		}
		idx.AddCommand(indexCreateCommand(env))
		return idx
	})
}

// indexCreateOptions are the flags of strata index create.
type indexCreateOptions struct {
	remote     remoteFlags
	from       []string // required
	annots     []string // KEY=VALUE; default none
	required   []string // platforms; default none
	referrers  bool     // default true
	dryRun     bool     // default false
	digestFile string   // default none
}

func indexCreateCommand(env *Env) *cobra.Command {
	o := &indexCreateOptions{}
	cmd := &cobra.Command{
		Use:   "create DST --from REF...",
		Short: "Create an OCI index from per-platform images and push it",
		Long: `Create an OCI image index from per-platform images and push it to DST (a tag,
or a digest which must match), then print its digest.

Each --from is [OS/ARCH[/VARIANT]=]REF, REF an image in any registry by tag,
by digest, or as REPO:TAG@DIGEST (what strata push printed): the index pins
every image by digest, and a tag that moved away from its digest since the
push is an error. With OS/ARCH= the image must be of that platform. Each image
is copied by digest into DST's repository first when not there (with its
referrers, such as its SBOM). Its platform is read from the image's config.
--annotation K=V goes on the outer index; nothing else is added (no creation
time: the same images give the same index digest).

Nothing is pushed when a --from is an index rather than an image, is of
another platform than named, moved, or shares its platform with another, or
when a platform named in --require is missing; the error names the --from
and what it found.`,
		Example: `  strata index create registry.example/app:1.0.0 \
    --from linux/amd64=registry.example/app:1.0.0-amd64@sha256:... \
    --from linux/arm64=registry.example/app:1.0.0-arm64@sha256:... \
    --require linux/amd64 --require linux/arm64 \
    --annotation org.opencontainers.image.version=1.0.0`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runIndexCreate(cmd, env, args[0], o)
		},
	}
	o.remote.add(cmd, true)
	cmd.Flags().StringArrayVar(&o.from, "from", nil, "a per-platform image: [OS/ARCH=]REF, REF by tag, digest or TAG@DIGEST (repeat)")
	cmd.Flags().BoolVar(&o.dryRun, "dry-run", false, "read and check every image and compute the index, push nothing")
	cmd.Flags().StringVar(&o.digestFile, "digest-file", "", "write the index digest to this file (for the publish step of a release)")
	cmd.Flags().BoolVar(&o.referrers, "referrers", true, "copy the referrers (SBOMs) of images from another repository along; --referrers=false leaves them behind")
	cmd.Flags().StringArrayVar(&o.annots, "annotation", nil, "KEY=VALUE annotation on the index (repeat)")
	cmd.Flags().StringSliceVar(&o.required, "require", nil, "platforms that must be present, e.g. linux/amd64,linux/arm64")
	_ = cmd.MarkFlagRequired("from")
	return cmd
}

func runIndexCreate(cmd *cobra.Command, env *Env, dst string, o *indexCreateOptions) error {
	f := &o.remote
	opts := publish.IndexOptions{From: o.from, Jobs: f.jobs, Insecure: f.insecure, NoReferrers: !o.referrers, DryRun: o.dryRun}
	if err := keyValues(&opts.Annotations, o.annots, false, func(a string) error { return fmt.Errorf("--annotation %q: want KEY=VALUE", a) }); err != nil {
		return err
	}
	var err error
	if opts.Require, err = parseRequired(o.required); err != nil {
		return err
	}
	log := f.logger(cmd, env)
	kc, err := f.keychain(cmd, env, log, dst)
	if err != nil {
		return err
	}
	opts.Keychain, opts.Log = kc, log
	r, err := publish.CreateIndex(cmd.Context(), dst, opts)
	if err != nil {
		return err
	}
	if err := writeDigestFile(o.digestFile, r.Digest); err != nil {
		return err
	}
	if f.json {
		return f.print(env, "", r)
	}
	if o.dryRun {
		fmt.Fprintf(env.Stderr, "dry run: would push the index %s to %s (nothing was pushed)\n", r.Digest, dst)
	}
	_, err = fmt.Fprintln(env.Stdout, r.Digest)
	return err
}

// parseRequired reads --require: platforms, repeated or comma-separated.
func parseRequired(required []string) ([]v1.Platform, error) {
	var out []v1.Platform
	for _, r := range required {
		for _, s := range strings.Split(r, ",") {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			p, err := publish.ParsePlatform(s)
			if err != nil {
				return nil, fmt.Errorf("--require: %w", err)
			}
			out = append(out, p)
		}
	}
	return out, nil
}
