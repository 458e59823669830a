package cli

import (
	"fmt"
	"strings"

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

func indexCreateCommand(env *Env) *cobra.Command {
	var (
		f          remoteFlags
		from       []string
		annots     []string
		required   []string
		referrers  bool
		dryRun     bool
		digestFile string
	)
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
			opts := publish.IndexOptions{From: from, Jobs: f.jobs, Insecure: f.insecure, NoReferrers: !referrers, DryRun: dryRun}
			if err := keyValues(&opts.Annotations, annots, false, func(a string) error { return fmt.Errorf("--annotation %q: want KEY=VALUE", a) }); err != nil {
				return err
			}
			for _, r := range required {
				for _, s := range strings.Split(r, ",") {
					if s = strings.TrimSpace(s); s == "" {
						continue
					}
					p, err := publish.ParsePlatform(s)
					if err != nil {
						return fmt.Errorf("--require: %w", err)
					}
					opts.Require = append(opts.Require, p)
				}
			}
			log := f.logger(cmd, env)
			kc, err := f.keychain(cmd, env, log, args[0])
			if err != nil {
				return err
			}
			opts.Keychain, opts.Log = kc, log
			r, err := publish.CreateIndex(cmd.Context(), args[0], opts)
			if err != nil {
				return err
			}
			if err := writeDigestFile(digestFile, r.Digest); err != nil {
				return err
			}
			if f.json {
				return f.print(env, "", r)
			}
			if dryRun {
				fmt.Fprintf(env.Stderr, "dry run: would push the index %s to %s (nothing was pushed)\n", r.Digest, args[0])
			}
			_, err = fmt.Fprintln(env.Stdout, r.Digest)
			return err
		},
	}
	f.add(cmd, true)
	cmd.Flags().StringArrayVar(&from, "from", nil, "a per-platform image: [OS/ARCH=]REF, REF by tag, digest or TAG@DIGEST (repeat)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "read and check every image and compute the index, push nothing")
	cmd.Flags().StringVar(&digestFile, "digest-file", "", "write the index digest to this file (for the publish step of a release)")
	cmd.Flags().BoolVar(&referrers, "referrers", true, "copy the referrers (SBOMs) of images from another repository along; --referrers=false leaves them behind")
	cmd.Flags().StringArrayVar(&annots, "annotation", nil, "KEY=VALUE annotation on the index (repeat)")
	cmd.Flags().StringSliceVar(&required, "require", nil, "platforms that must be present, e.g. linux/amd64,linux/arm64")
	_ = cmd.MarkFlagRequired("from")
	return cmd
}
