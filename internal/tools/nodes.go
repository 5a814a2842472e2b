package tools

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/cluster-shepherd/shepherd/internal/answer"
	"github.com/cluster-shepherd/shepherd/internal/nodes"
)

type nodeCmdIn struct {
	Node    string `json:"node" jsonschema:"node name as shown by get_node_list"`
	Command string `json:"command" jsonschema:"one allowlisted diagnostic command, e.g. df -h or journalctl -u kubelet -n 100; no pipes or shell syntax"`
}

// nodeTools declares run_node_cmd: what only the node can tell (disk,
// journal, systemd), over SSH, allowlisted commands only.
func nodeTools() []Tool {
	t := defineWrite(mcp.Tool{
		Name: "run_node_cmd",
		Description: "Run one allowlisted diagnostic command on a node over SSH (host key checked, no shell: " +
			"pipes, redirections, ;, &&, backticks and $() are refused). Output is capped and secrets masked. " +
			"Allowed: " + nodes.DefaultAllowlist().Usage() + gated,
		Annotations: &mcp.ToolAnnotations{Title: "Run node command", DestructiveHint: ptr(false), IdempotentHint: true, OpenWorldHint: ptr(true)},
	}, runNodeCmd)
	t.Needs = "nodes"
	return []Tool{t}
}

var runNodeCmd = writeHandler[nodeCmdIn]{
	prepare: func(ctx context.Context, d *Deps, in *nodeCmdIn) error {
		if err := checkName("node", in.Node); err != nil {
			return err
		}
		argv, err := d.Nodes.Allowlist().Check(in.Command)
		if err != nil {
			return badArg("%s", err.Error())
		}
		in.Command = canonicalCommand(argv, in.Command)
		if _, err := d.Cache.Nodes.Get(in.Node); err != nil {
			return badArg("node %q not found; nodes: %s", in.Node, strings.Join(nodeNames(d), ", "))
		}
		return nil
	},
	run: func(ctx context.Context, d *Deps, in nodeCmdIn) (string, error) {
		n, err := d.Cache.Nodes.Get(in.Node)
		if err != nil {
			return "", badArg("node %q not found", in.Node)
		}
		addr, err := d.Nodes.NodeAddress(n)
		if err != nil {
			return "", badArg("%s", err.Error())
		}
		res, err := d.Nodes.Run(ctx, addr, in.Command)
		if err != nil {
			if errors.Is(err, nodes.ErrHostKey) {
				return "", fmt.Errorf("run_node_cmd on %s: %w (add the node's key to the known_hosts file if it is genuinely new)", in.Node, err)
			}
			return "", fmt.Errorf("run_node_cmd on %s: %w", in.Node, err)
		}
		a := answer.New(d.MaxBytes)
		a.Linef("%s$ %s (exit %d%s)", in.Node, in.Command, res.ExitCode, map[bool]string{true: ", output truncated", false: ""}[res.Truncated])
		for _, l := range strings.Split(strings.TrimRight(res.Stdout, "\n"), "\n") {
			a.Line(l)
		}
		if res.Stderr != "" {
			a.Line("stderr:")
			for _, l := range strings.Split(strings.TrimRight(res.Stderr, "\n"), "\n") {
				a.Line(l)
			}
		}
		return a.String("lines", "a narrower command (e.g. journalctl -n 50)"), nil
	},
}

func nodeNames(d *Deps) []string {
	ns, _ := d.Cache.Nodes.List(labels.Everything())
	out := make([]string, 0, len(ns))
	for _, n := range ns {
		out = append(out, n.Name)
	}
	sort.Strings(out)
	return out
}

// canonicalCommand spells an argv one way, so that "df  -h" assessed and
// "df -h" called are the same call; it parses back to the same argv.
func canonicalCommand(argv []string, raw string) string {
	parts := make([]string, len(argv))
	for i, a := range argv {
		switch {
		case !strings.ContainsAny(a, " \t'\""):
			parts[i] = a
		case !strings.Contains(a, `"`):
			parts[i] = `"` + a + `"`
		case !strings.Contains(a, "'"):
			parts[i] = "'" + a + "'"
		default:
			return raw // both quote kinds in one word: keep the model's spelling
		}
	}
	return strings.Join(parts, " ")
}
