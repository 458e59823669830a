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
		f        remoteFlags
		from     []string
		annots   []string
		required []string
	)
	cmd := &cobra.Command{
		Use:   "create DST --from REF...",
		Short: "Create an OCI index from per-platform images and push it",
		Long: `Create an OCI image index from per-platform images and push it to DST (a tag,
or a digest which must match), then print its digest.

Each --from is an image in any registry, by digest or tag; it is copied by
digest into DST's repository first when not there. Its platform is read from
the image's config. --annotation K=V goes on the outer index; nothing else is
added (no creation time: the same images give the same index digest).

Nothing is pushed when a platform named in --require is missing or when two
images have the same platform.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := publish.IndexOptions{From: from, Jobs: f.jobs, Insecure: f.insecure}
			for _, a := range annots {
				k, v, ok := strings.Cut(a, "=")
				if !ok || k == "" {
					return fmt.Errorf("--annotation %q: want KEY=VALUE", a)
				}
				if opts.Annotations == nil {
					opts.Annotations = map[string]string{}
				}
				opts.Annotations[k] = v
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
			if f.json {
				return f.print(env, "", r)
			}
			_, err = fmt.Fprintln(env.Stdout, r.Digest)
			return err
		},
	}
	f.add(cmd, true)
	cmd.Flags().StringArrayVar(&from, "from", nil, "a per-platform image (repeat)")
	cmd.Flags().StringArrayVar(&annots, "annotation", nil, "KEY=VALUE annotation on the index (repeat)")
	cmd.Flags().StringSliceVar(&required, "require", nil, "platforms that must be present, e.g. linux/amd64,linux/arm64")
	_ = cmd.MarkFlagRequired("from")
	return cmd
}
