// Command shepherd is cluster-shepherd: an MCP server that lets an LLM
// observe, and behind a risk gate operate, one Kubernetes cluster, plus
// Cortex, its memory. This package only wires flags to the internal packages.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/cluster-shepherd/shepherd/internal/redact"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := &cobra.Command{
		Use:           "shepherd",
		Short:         "An MCP server that lets an LLM observe and safely operate a Kubernetes cluster",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(serveCmd(), stdioCmd(), versionCmd())
	root.AddCommand(extraCommands()...)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "shepherd:", redact.String(err.Error()))
		os.Exit(1)
	}
}

// extraCommands are the subcommands of later features (cortex, ingest,
// tasks); each file adds its own.
var extraCommands = func() []*cobra.Command { return nil }

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "shepherd", version)
		},
	}
}

// newLogger writes JSON logs to stderr with secrets masked.
func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(redact.NewHandler(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l}))), nil
}
