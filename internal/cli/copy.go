package cli

import "github.com/spf13/cobra"

func init() {
	register(func(env *Env) *cobra.Command {
		return copyCommand(env, "copy SRC DST", "Copy an image or index between registries, or from local files",
			"Copy SRC to the registry reference DST.\n\n"+sourcesHelp, "copied")
	})
}
