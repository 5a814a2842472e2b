package main

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/cluster-shepherd/shepherd/internal/config"
	"github.com/cluster-shepherd/shepherd/internal/guard"
	"unicode"
	"unicode/utf8"
)

func init() {
	prev := extraCommands
	extraCommands = func() []*cobra.Command { return append(prev(), tasksCmd()) }
}

// tasksCmd is the out-of-band approval channel: a human at a terminal,
// through the admin API that the model cannot reach.
func tasksCmd() *cobra.Command {
	var server, tokenFile, by string
	cmd := &cobra.Command{
		Use:   "tasks",
		Short: "List, approve or reject queued tasks through shepherd's admin API",
		Long: `List, approve or reject the tasks the model queued for a human. These talk to
the /admin API of a running shepherd serve, which needs its own admin token
(--admin-token-file or SHEPHERD_ADMIN_TOKEN, the same on both sides).`,
	}
	pf := cmd.PersistentFlags()
	pf.String(config.FileFlag, "", "YAML file of settings (keys are flag names)")
	pf.StringVar(&server, "server", "http://127.0.0.1:8080", "base URL of the shepherd serving the admin API")
	pf.StringVar(&tokenFile, "admin-token-file", "", "file holding the admin token (or SHEPHERD_ADMIN_TOKEN)")
	pf.StringVar(&by, "by", os.Getenv("USER"), "who approves or rejects, recorded on the task")

	client := func(c *cobra.Command) (*guard.AdminClient, error) {
		if err := config.Resolve(c.Flags()); err != nil {
			return nil, err
		}
		tok, err := config.ReadSecret(tokenFile, "SHEPHERD_ADMIN_TOKEN")
		if err != nil {
			return nil, fmt.Errorf("--admin-token-file: %w", err)
		}
		if tok == "" {
			return nil, fmt.Errorf("no admin token given (set --admin-token-file or SHEPHERD_ADMIN_TOKEN)")
		}
		if !strings.HasPrefix(server, "http://") && !strings.HasPrefix(server, "https://") {
			return nil, fmt.Errorf("--server %q: want an http:// or https:// URL", server)
		}
		return &guard.AdminClient{BaseURL: strings.TrimRight(server, "/"), Token: tok}, nil
	}
	var state string
	list := &cobra.Command{
		Use:   "list",
		Short: "List tasks (pending by default)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cl, err := client(c)
			if err != nil {
				return err
			}
			ts, err := cl.List(c.Context(), state)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(c.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tSTATE\tRISK\tTOOL\tARGUMENTS\tACTION")
			for _, t := range ts {
				fmt.Fprintf(w, "%s\t%s\t%s %.2f\t%s\t%s\t%s\n", printable(t.ID), t.State, t.Recommendation, t.Score, printable(t.Tool), printable(string(t.Arguments)), printable(t.Action))
			}
			return w.Flush()
		},
	}
	list.Flags().StringVar(&state, "state", "pending", "pending, approved, executing, done, failed, rejected, expired or all")
	decide := func(approve bool) *cobra.Command {
		verb := "reject"
		if approve {
			verb = "approve"
		}
		return &cobra.Command{
			Use:   verb + " ID",
			Short: strings.ToUpper(verb[:1]) + verb[1:] + " one queued task",
			Args:  cobra.ExactArgs(1),
			RunE: func(c *cobra.Command, args []string) error {
				cl, err := client(c)
				if err != nil {
					return err
				}
				var t guard.Task
				if approve {
					t, err = cl.Approve(c.Context(), args[0], by)
				} else {
					t, err = cl.Reject(c.Context(), args[0], by)
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(c.OutOrStdout(), "task %s %s: %s %s\n", printable(t.ID), t.State, printable(t.Tool), printable(string(t.Arguments)))
				return nil
			},
		}
	}
	cmd.AddCommand(list, decide(true), decide(false))
	return cmd
}

// printable shows text from the model or the queue safely on a terminal:
// control characters and bidirectional overrides are escaped, never
// interpreted (the gate refuses them at queue time; this is the second line).
func printable(s string) string {
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) || r == utf8.RuneError {
			fmt.Fprintf(&b, "\\u%04x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
