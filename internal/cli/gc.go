package cli

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"strata/internal/registry"
	"strata/internal/storage"
)

func init() { register(newGCCmd) }

type gcOptions struct {
	storagePath    string
	dryRun         bool
	grace          time.Duration
	uploadMaxAge   time.Duration
	deleteUntagged bool
}

func newGCCmd(env *Env) *cobra.Command {
	o := &gcOptions{}
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Remove blobs, links and uploads that nothing references from a registry's storage",
		Long: `gc collects garbage in the filesystem storage of strata serve: blobs that no
pushed tag or manifest, and no on-demand image or layer record, references;
links of deleted content; uploads idle for longer than --upload-max-age.
Nothing younger than --grace is removed, so a push in progress is safe.
Prefer serve's --gc-interval while the registry runs: it also holds off
concurrent pushes during the sweep.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.storagePath == "" {
				return errors.New("no storage directory: set --storage-path (or STORAGE_PATH)")
			}
			store, err := storage.NewFS(o.storagePath)
			if err != nil {
				return err
			}
			rep, err := registry.CollectGarbage(cmd.Context(), store, registry.GCOptions{DryRun: o.dryRun, Grace: o.grace,
				UploadMaxAge: o.uploadMaxAge, DeleteUntagged: o.deleteUntagged, Log: env.Log})
			if err != nil {
				return err
			}
			verb := "removed"
			if o.dryRun {
				verb = "would remove"
			}
			out := cmd.OutOrStdout()
			for _, d := range rep.Blobs {
				fmt.Fprintf(out, "%s blob %s\n", verb, d)
			}
			for _, k := range rep.Links {
				fmt.Fprintf(out, "%s link %s\n", verb, k)
			}
			for _, id := range rep.Uploads {
				fmt.Fprintf(out, "%s upload %s\n", verb, id)
			}
			fmt.Fprintf(out, "%s %d blobs (%d bytes), %d links, %d uploads; kept %d blobs\n", verb,
				len(rep.Blobs), rep.BlobBytes, len(rep.Links), len(rep.Uploads), rep.LiveBlobs)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.storagePath, "storage-path", env.Getenv("STORAGE_PATH"), "directory of the filesystem storage (STORAGE_PATH)")
	f.BoolVar(&o.dryRun, "dry-run", false, "list what would be removed, remove nothing")
	f.DurationVar(&o.grace, "grace", time.Hour, "never remove objects modified more recently than this")
	f.DurationVar(&o.uploadMaxAge, "upload-max-age", 24*time.Hour, "remove uploads idle for longer than this")
	f.BoolVar(&o.deleteUntagged, "delete-untagged", true, "remove pushed manifests that no tag reaches")
	return cmd
}
