// Package tools declares shepherd's MCP tools as data: name, description,
// input type (its JSON schema is inferred), annotations and a short handler.
// One file per tool group; the wrapper here turns every handler error into
// a short isError answer, masks secrets, caps bytes and counts calls.
package tools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cluster-shepherd/shepherd/internal/answer"
	"github.com/cluster-shepherd/shepherd/internal/cluster"
	"github.com/cluster-shepherd/shepherd/internal/cortex"
	"github.com/cluster-shepherd/shepherd/internal/gitops"
	"github.com/cluster-shepherd/shepherd/internal/guard"
	"github.com/cluster-shepherd/shepherd/internal/nodes"
	"github.com/cluster-shepherd/shepherd/internal/redact"
)

// Deps is everything a tool handler may reach.
type Deps struct {
	Cache     *cluster.Cache
	Memory    cortex.Memory   // nil: the cortex tools are not offered
	Gate      *guard.Gate     // nil: no write or guard tool is offered
	GitOps    *gitops.Service // nil: gitops_change is not offered
	Nodes     *nodes.Runner   // nil: run_node_cmd is not offered
	Cluster   string          // this cluster's name, tagged on memory
	MaxBytes  int
	NodeAddrs map[string]string // per-node SSH address overrides
	Log       *slog.Logger
	Metrics   *Metrics
	Now       func() time.Time
}

func (d *Deps) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// Tool is one MCP tool as data.
type Tool struct {
	Def   mcp.Tool
	Write bool // changes something; hidden by --read-only
	// ForWrites marks a tool that changes only the task queue, for a write
	// to come; --read-only hides it too.
	ForWrites bool
	// Needs names a dependency without which the tool is not offered.
	Needs string
	// validate checks a write's arguments the way a call would, without
	// running it, so that assess_risk and queue_task refuse a call that
	// could never run instead of authorizing it.
	validate func(ctx context.Context, d *Deps, args map[string]any) error
	add      func(s *mcp.Server, d *Deps)
}

// Name is the tool's MCP name.
func (t Tool) Name() string { return t.Def.Name }

// handler is what a tool declares: parse is done by the SDK (typed input,
// schema-validated), the handler calls into a domain package and returns
// the compact answer text.
type handler[In any] func(ctx context.Context, d *Deps, in In) (string, error)

// userError is a mistake the model can fix (bad argument, unknown name);
// it is reported as is. Other errors are prefixed with the tool's name.
type userError struct{ msg string }

func (e *userError) Error() string { return e.msg }

func badArg(format string, args ...any) error { return &userError{fmt.Sprintf(format, args...)} }

func define[In any](def mcp.Tool, write bool, h handler[In]) Tool {
	t := Tool{Def: def, Write: write}
	t.add = func(s *mcp.Server, d *Deps) {
		def := def
		mcp.AddTool(s, &def, func(ctx context.Context, req *mcp.CallToolRequest, in In) (*mcp.CallToolResult, any, error) {
			start := time.Now()
			ctx = guard.WithClient(ctx, clientIdentity(req))
			ctx, audited := guard.WithAuditMark(ctx)
			if !d.Cache.Synced() {
				return errorResult("shepherd is still loading the cluster cache; try again in a few seconds"), nil, nil
			}
			text, err := h(ctx, d, in)
			outcome := "ok"
			if err != nil {
				outcome = "error"
				var ue *userError
				if !errors.As(err, &ue) {
					// Errors may quote arguments of any size: keep a log line short.
					d.Log.Warn("tool failed", "tool", def.Name, "err", answer.Clip(redact.String(err.Error()), maxErrorBytes))
				}
				text = err.Error()
			}
			text = redact.String(text)
			// The gate audits what it decides; record the rest, including a
			// write refused before it reached the gate (bad arguments, a
			// command or path outside the allowlist).
			if d.Gate != nil && !audited() {
				decision := guard.DecisionAllowed
				if write && err != nil {
					decision = guard.DecisionRefused
				}
				rec := guard.AuditRecord{Tool: def.Name, Arguments: argsMap(in), Decision: decision,
					DurationMS: time.Since(start).Milliseconds(), Result: outcome}
				if err != nil {
					rec.Error = text
				}
				if aerr := d.Gate.Record(ctx, rec); aerr != nil {
					d.Log.Error("audit record", "tool", def.Name, "err", aerr)
				}
			}
			if d.Metrics != nil {
				d.Metrics.observe(def.Name, outcome, time.Since(start), len(text))
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}, IsError: err != nil}, nil, nil
		})
	}
	return t
}

func errorResult(msg string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: msg}}, IsError: true}
}

// clientIdentity names the caller for the audit log: the MCP client's own
// name and version, its session, and where it connected from.
func clientIdentity(req *mcp.CallToolRequest) string {
	id := "unknown"
	if req.Session != nil {
		if p := req.Session.InitializeParams(); p != nil && p.ClientInfo != nil {
			id = p.ClientInfo.Name + "/" + p.ClientInfo.Version
		}
		if sid := req.Session.ID(); sid != "" {
			id += " session=" + sid
		}
	}
	if req.Extra != nil && req.Extra.Header != nil {
		id += " via=http"
		if ua := req.Extra.Header.Get("User-Agent"); ua != "" {
			id += " ua=" + answer.Clip(ua, 60)
		}
	} else {
		id += " via=stdio"
	}
	return id
}

// All returns every tool shepherd knows, in a stable order.
func All() []Tool {
	var all []Tool
	all = append(all, observeTools()...)
	all = append(all, cortexTools()...)
	all = append(all, guardTools()...)
	all = append(all, actTools()...)
	all = append(all, gitopsTools()...)
	all = append(all, nodeTools()...)
	return all
}

// Select applies --read-only and the enable/disable lists. Unknown names in
// either list are an error, so a typo does not silently enable a tool.
func Select(all []Tool, readOnly bool, enable, disable []string) ([]Tool, error) {
	known := map[string]bool{}
	for _, t := range all {
		known[t.Name()] = true
	}
	var unknown []string
	for _, n := range append(append([]string{}, enable...), disable...) {
		if !known[n] {
			unknown = append(unknown, n)
		}
	}
	if len(unknown) > 0 {
		names := make([]string, 0, len(known))
		for n := range known {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, fmt.Errorf("unknown tool name(s) %s; tools are: %s", strings.Join(unknown, ", "), strings.Join(names, ", "))
	}
	var out []Tool
	for _, t := range all {
		if readOnly && (t.Write || t.ForWrites) {
			continue
		}
		if len(enable) > 0 && !slices.Contains(enable, t.Name()) {
			continue
		}
		if slices.Contains(disable, t.Name()) {
			continue
		}
		out = append(out, t)
	}
	return out, nil
}

// Instructions tell a client what shepherd is for.
const Instructions = `cluster-shepherd observes and, behind a risk gate, operates one Kubernetes cluster.
Start with get_cluster_alerts to see what is wrong, then narrow with get_pod_logs, get_flux_status, get_node_status or list_workloads.
Answers are compact summaries from the live cluster; when one says it was truncated, narrow by namespace.
Before proposing a fix, call query_cortex: cite what happened in this cluster before and what worked.
Write tools run only after assess_risk returns "auto" for exactly that call, or after a human approved the queued task.
Call approve_task only when the human in this conversation has explicitly approved that task; never on your own.`

// NewServer builds an MCP server offering tools. Tools whose dependency is
// missing (no Cortex, say) are left out.
func NewServer(d *Deps, tools []Tool, version string) *mcp.Server {
	if d.Log == nil {
		d.Log = slog.Default()
	}
	if d.MaxBytes <= 0 {
		d.MaxBytes = answer.DefaultMaxBytes
	}
	s := mcp.NewServer(&mcp.Implementation{Name: "cluster-shepherd", Version: version}, &mcp.ServerOptions{
		Instructions: Instructions,
		Logger:       d.Log,
	})
	s.AddReceivingMiddleware(clipErrors)
	for _, t := range tools {
		if t.Needs == "cortex" && d.Memory == nil || t.Needs == "gate" && d.Gate == nil ||
			t.Needs == "gitops" && (d.GitOps == nil || d.Gate == nil) || t.Needs == "nodes" && (d.Nodes == nil || d.Gate == nil) {
			continue
		}
		t.add(s, d)
	}
	return s
}

// maxErrorBytes caps the text of a tool error. Errors quote the argument at
// fault, and the SDK's schema validation quotes a wrongly typed value whole,
// however large; the head of the text says what was wrong, the tail why.
const maxErrorBytes = 2000

// clipErrors shortens every tool error longer than maxErrorBytes to its
// first 512 and last 1024 bytes.
func clipErrors(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		res, err := next(ctx, method, req)
		if r, ok := res.(*mcp.CallToolResult); ok && r != nil && r.IsError {
			for _, c := range r.Content {
				if tc, ok := c.(*mcp.TextContent); ok && len(tc.Text) > maxErrorBytes {
					head, tail := 512, len(tc.Text)-1024
					for head > 0 && !utf8.RuneStart(tc.Text[head]) {
						head--
					}
					for tail < len(tc.Text) && !utf8.RuneStart(tc.Text[tail]) {
						tail++
					}
					tc.Text = fmt.Sprintf("%s ...[%d bytes cut]... %s", tc.Text[:head], tail-head, tc.Text[tail:])
				}
			}
		}
		return res, err
	}
}

// Metrics counts tool calls for Prometheus.
type Metrics struct {
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	bytes    *prometheus.HistogramVec
}

// NewMetrics registers tool metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shepherd_tool_calls_total", Help: "MCP tool calls by tool and outcome (ok, error).",
		}, []string{"tool", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "shepherd_tool_duration_seconds", Help: "Server-side duration of MCP tool calls.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .05, .1, .5, 1, 5, 30},
		}, []string{"tool"}),
		bytes: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "shepherd_tool_answer_bytes", Help: "Bytes of MCP tool answers.",
			Buckets: prometheus.ExponentialBuckets(128, 2, 10),
		}, []string{"tool"}),
	}
	reg.MustRegister(m.calls, m.duration, m.bytes)
	return m
}

func (m *Metrics) observe(tool, outcome string, d time.Duration, n int) {
	m.calls.WithLabelValues(tool, outcome).Inc()
	m.duration.WithLabelValues(tool).Observe(d.Seconds())
	m.bytes.WithLabelValues(tool).Observe(float64(n))
}

// ptr returns a pointer to v, for the optional annotation hints.
func ptr[T any](v T) *T { return &v }

// readOnly are the annotations of a tool that changes nothing.
func readOnly(title string) *mcp.ToolAnnotations {
	return &mcp.ToolAnnotations{Title: title, ReadOnlyHint: true, IdempotentHint: true, DestructiveHint: ptr(false), OpenWorldHint: ptr(false)}
}

// argsMap turns a typed input back into the JSON object the model sent, for
// audit records and the gate's canonical key.
func argsMap(in any) map[string]any {
	b, _ := json.Marshal(in)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}
