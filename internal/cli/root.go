// Package cli is strata's command line: one file per subcommand, each turning
// flags into options for the library packages. Subcommands register
// themselves with register in an init function, so adding one touches no
// other file.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/cobra"
)

// Version is set at build time with -ldflags "-X strata/internal/cli.Version=...".
var Version = "dev"

// Env holds what every subcommand shares: streams, the environment and the
// logger.
type Env struct {
	Stdout, Stderr io.Writer
	// Getenv reads the environment; tests replace it.
	Getenv func(string) string
	// Log is the structured logger (JSON on stderr unless --log-format=text).
	Log *slog.Logger
}

var commands []func(*Env) *cobra.Command

// register adds a subcommand constructor; call it from an init function.
func register(f func(*Env) *cobra.Command) { commands = append(commands, f) }

// ExitError carries a specific exit code out of a subcommand.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// NewRoot builds the root command.
func NewRoot(env *Env) *cobra.Command {
	var logFormat, logLevel string
	root := &cobra.Command{
		Use:           "strata",
		Short:         "Nix packages in, OCI images out: an on-demand registry, an image builder and a publisher",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w (use debug, info, warn or error)", err)
			}
			opts := &slog.HandlerOptions{Level: lvl}
			switch logFormat {
			case "json":
				env.Log = slog.New(slog.NewJSONHandler(env.Stderr, opts))
			case "text":
				env.Log = slog.New(slog.NewTextHandler(env.Stderr, opts))
			default:
				return fmt.Errorf("--log-format %q: use json or text", logFormat)
			}
			return nil
		},
	}
	root.PersistentFlags().StringVar(&logFormat, "log-format", "json", "log format: json or text")
	root.PersistentFlags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	for _, f := range commands {
		root.AddCommand(f(env))
	}
	return root
}

// Execute runs the command line and returns the process exit code.
func Execute(ctx context.Context, args []string) int {
	env := &Env{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv,
		Log: slog.New(slog.NewJSONHandler(os.Stderr, nil))}
	root := NewRoot(env)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(env.Stderr, "strata:", err)
		var ee *ExitError
		if errors.As(err, &ee) {
			return ee.Code
		}
		return 1
	}
	return 0
}

func init() {
	register(func(env *Env) *cobra.Command {
		return &cobra.Command{
			Use:   "version",
			Short: "Print strata's version",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				_, err := fmt.Fprintln(env.Stdout, "strata", Version)
				return err
			},
		}
	})
}
