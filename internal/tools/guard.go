package tools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/cluster-shepherd/shepherd/internal/answer"
	"github.com/cluster-shepherd/shepherd/internal/guard"
)

type assessIn struct {
	Action    string         `json:"action" jsonschema:"what you intend to do and why, in one sentence, e.g. restart immich/immich because it is stuck"`
	Tool      string         `json:"tool,omitempty" jsonschema:"the write tool you intend to call, e.g. restart_workload"`
	Arguments map[string]any `json:"arguments,omitempty" jsonschema:"the exact arguments you will pass to that tool"`
}

type queueIn struct {
	Action       string         `json:"action" jsonschema:"what should be done, in one sentence"`
	Reason       string         `json:"reason" jsonschema:"why it is needed: the evidence you found"`
	Tool         string         `json:"tool,omitempty" jsonschema:"the write tool to run once approved"`
	Arguments    map[string]any `json:"arguments,omitempty" jsonschema:"its exact arguments"`
	AssessmentID string         `json:"assessment_id,omitempty" jsonschema:"the assessment_id from assess_risk for this call, if any"`
}

type idIn struct {
	ID string `json:"id" jsonschema:"the task id from queue_task or list_pending_tasks"`
}

func guardTools() []Tool {
	tools := []Tool{
		define(mcp.Tool{
			Name: "assess_risk",
			Description: "Score a proposed change before making it: 0-1 risk, a recommendation (auto, review or reject), the reasoning " +
				"and similar past incidents in this cluster. When you name the tool and its exact arguments and the answer is auto, " +
				"that one call is authorized for a few minutes. review means: queue_task and wait for a human. reject means: do not.",
			Annotations: &mcp.ToolAnnotations{Title: "Assess risk", ReadOnlyHint: true, DestructiveHint: ptr(false), OpenWorldHint: ptr(false)},
		}, false, assessRisk),
		define(mcp.Tool{
			Name: "queue_task",
			Description: "Ask a human to approve a change that assess_risk did not rate auto. The task waits in a durable queue; " +
				"once approved, calling the tool with exactly the queued arguments runs it once.",
			Annotations: &mcp.ToolAnnotations{Title: "Queue task", DestructiveHint: ptr(false), OpenWorldHint: ptr(false)},
		}, false, queueTask),
		define(mcp.Tool{
			Name: "approve_task",
			Description: "Approve a queued task. Only when the human you are talking to explicitly approved it; " +
				"this server may require approval through its own CLI instead and will say so.",
			Annotations: &mcp.ToolAnnotations{Title: "Approve task", DestructiveHint: ptr(false), OpenWorldHint: ptr(false)},
		}, false, approveTask),
		define(mcp.Tool{
			Name:        "list_pending_tasks",
			Description: "Queued tasks that await a human's approval, and approved ones not yet run.",
			Annotations: readOnly("Pending tasks"),
		}, false, listPending),
	}
	for i := range tools {
		tools[i].Needs = "gate"
		n := tools[i].Name()
		tools[i].ForWrites = n == "queue_task" || n == "approve_task"
	}
	return tools
}

func assessRisk(ctx context.Context, d *Deps, in assessIn) (string, error) {
	if strings.TrimSpace(in.Action) == "" {
		return "", badArg("action is required: describe what you intend to do")
	}
	if in.Tool != "" && in.Arguments == nil {
		in.Arguments = map[string]any{}
	}
	facts, err := toolFacts(ctx, d, in.Tool, in.Arguments)
	if err != nil {
		return "", err
	}
	a, err := d.Gate.Assess(ctx, guard.AssessInput{Action: in.Action, Tool: in.Tool, Args: in.Arguments, Facts: facts})
	if err != nil {
		return "", guardErr("assess_risk", err)
	}
	a.Arguments = compactArgs(a.Arguments)
	return renderJSON(d, a)
}

// toolFacts lets the live cluster raise the floor of a proposed call.
func toolFacts(ctx context.Context, d *Deps, tool string, args map[string]any) ([]guard.Floor, error) {
	if tool == "" {
		return nil, nil
	}
	var write *Tool
	for _, t := range slices.Concat(actTools(), nodeTools(), gitopsTools()) {
		if t.Name() == tool {
			write = &t
		}
	}
	if write == nil {
		return nil, badArg("tool %q is not a write tool of this server", tool)
	}
	// Arguments a call would refuse get the same answer here. A tool this
	// server does not offer (GitOps or SSH not configured) is only scored.
	if write.validate != nil && !(write.Needs == "gitops" && d.GitOps == nil) && !(write.Needs == "nodes" && d.Nodes == nil) {
		if err := write.validate(ctx, d, args); err != nil {
			return nil, err
		}
	}
	if tool == "delete_crds" {
		domain, _ := args["domain"].(string)
		if err := ValidateDomainArg(domain); err != nil {
			return nil, err
		}
		return crdFacts(ctx, d, strings.ToLower(strings.TrimSpace(domain)))
	}
	return nil, nil
}

func queueTask(ctx context.Context, d *Deps, in queueIn) (string, error) {
	if strings.TrimSpace(in.Action) == "" || strings.TrimSpace(in.Reason) == "" {
		return "", badArg("action and reason are required")
	}
	if in.Tool != "" && in.Arguments == nil {
		in.Arguments = map[string]any{}
	}
	facts, err := toolFacts(ctx, d, in.Tool, in.Arguments)
	if err != nil {
		return "", err
	}
	t, err := d.Gate.Queue(ctx, guard.QueueInput{Action: in.Action, Reason: in.Reason, Tool: in.Tool, Args: in.Arguments, AssessmentID: in.AssessmentID, Facts: facts})
	if err != nil {
		return "", guardErr("queue_task", err)
	}
	next := "a human must approve it (approve_task in chat, or `shepherd tasks approve " + t.ID + "`); then call the tool with exactly the queued arguments"
	if d.Gate.ApprovalMode() == guard.ApprovalOutOfBand {
		next = "a human must approve it with `shepherd tasks approve " + t.ID + "`; then call the tool with exactly the queued arguments"
	}
	return renderJSON(d, map[string]any{"task_id": t.ID, "state": t.State, "recommendation": t.Recommendation, "score": t.Score, "expires_at": t.ExpiresAt, "next_step": next})
}

func approveTask(ctx context.Context, d *Deps, in idIn) (string, error) {
	if strings.TrimSpace(in.ID) == "" {
		return "", badArg("id is required")
	}
	t, err := d.Gate.Approve(ctx, in.ID, guard.ClientFrom(ctx), guard.ChannelChat)
	if err != nil {
		return "", guardErr("approve_task", err)
	}
	return renderJSON(d, map[string]any{"task_id": t.ID, "state": t.State, "tool": t.Tool, "arguments": compactArgs(t.Args()), "action": t.Action,
		"next_step": "call " + t.Tool + " with exactly these arguments (long values are shortened here: send them as you queued them); the approval is good for one execution"})
}

func listPending(ctx context.Context, d *Deps, _ noArgs) (string, error) {
	ts, err := d.Gate.Pending(ctx)
	if err != nil {
		return "", guardErr("list_pending_tasks", err)
	}
	a := answer.New(d.MaxBytes)
	a.Linef("%d tasks pending or approved", len(ts))
	for _, t := range ts {
		t = guard.MaskedTask(t)
		args, _ := json.Marshal(compactArgs(t.Args()))
		a.Linef("%s %s %s %s %s risk=%.2f: %s", t.ID, t.State, t.Tool, args, t.Recommendation, t.Score, answer.Clip(t.Action, 200))
	}
	return a.String("tasks", ""), nil
}

// guardErr keeps the gate's model-facing messages intact and marks the
// model's own mistakes as such.
func guardErr(tool string, err error) error {
	var re *guard.RefusalError
	if errors.As(err, &re) || errors.Is(err, guard.ErrBadRequest) || errors.Is(err, guard.ErrOutOfBand) ||
		errors.Is(err, guard.ErrExpired) || errors.Is(err, guard.ErrDenied) || errors.Is(err, guard.ErrRefused) ||
		errors.Is(err, guard.ErrNotFound) {
		return &userError{err.Error()}
	}
	return fmt.Errorf("%s: %w", tool, err)
}

// maxArgEcho bounds a string argument echoed back to the model. A GitOps
// file's content can be 64 KiB: the model wrote it and need not read it
// back, and in full it would push the recommendation out of the answer.
const maxArgEcho = 200

// compactArgs returns args with long strings shortened and their size noted.
func compactArgs(args map[string]any) map[string]any {
	if args == nil {
		return nil
	}
	out := make(map[string]any, len(args))
	for k, v := range args {
		if s, ok := v.(string); ok && len(s) > maxArgEcho {
			v = fmt.Sprintf("%s (%d bytes in all)", answer.Clip(s, maxArgEcho), len(s))
		}
		out[k] = v
	}
	return out
}

// renderJSON answers with v as JSON. Over the byte cap it stays valid JSON:
// the largest fields are dropped (and named in "omitted") until it fits,
// never the verdict and what to do next.
func renderJSON(d *Deps, v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	if len(b) <= d.MaxBytes {
		return string(b), nil
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return answer.Clip(string(b), d.MaxBytes-40) + " [truncated]", nil
	}
	var omitted []string
	for len(b) > d.MaxBytes {
		largest, size := "", 0
		for k, x := range m {
			if keep[k] {
				continue
			}
			if xb, _ := json.Marshal(x); len(xb) > size {
				largest, size = k, len(xb)
			}
		}
		if largest == "" {
			break
		}
		delete(m, largest)
		omitted = append(omitted, largest)
		m["omitted"] = omitted
		b, _ = json.Marshal(m)
	}
	return string(b), nil
}

// keep are the fields renderJSON never drops.
var keep = map[string]bool{"assessment_id": true, "task_id": true, "id": true, "recommendation": true, "score": true,
	"state": true, "authorized": true, "next_step": true, "tool": true, "omitted": true}
