package guard

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
	"unicode"
	"unicode/utf8"
)

// Authorization is the permission, already consumed, to run one write.
// Pass it to Finish when the write is over.
type Authorization struct {
	TaskID    string         `json:"task_id"`
	Kind      string         `json:"kind"`
	CallID    string         `json:"call_id"`
	Tool      string         `json:"tool"`
	Arguments map[string]any `json:"arguments"`
	Action    string         `json:"action"`
	Started   time.Time      `json:"started"`
}

// Authorize consumes exactly one authorization for this exact call (tool and
// canonical arguments) and records the decision in the audit log. The task
// is marked executing, durably, before Authorize returns: if the process dies
// from here on, the call is never run again. A refusal is a *RefusalError
// whose text tells the model what to do next.
func (g *Gate) Authorize(ctx context.Context, tool string, args map[string]any) (Authorization, error) {
	start := g.now()
	callID := newID("c-")
	key, cj, err := g.canonical(tool, args)
	if err != nil {
		return Authorization{}, g.refuse(ctx, callID, tool, args, "", &RefusalError{Tool: tool, Reason: "arguments are not valid: " + err.Error(), Next: "fix the arguments"})
	}
	nargs := decodeArgs(cj)
	// Policy may have changed since the task was approved; deny always wins.
	for _, f := range g.o.Floors.Floors(tool, nargs) {
		if f.Min == cortex.Reject {
			return Authorization{}, g.refuse(ctx, callID, tool, nargs, "", &RefusalError{Tool: tool, Reason: f.Reason, Next: "do not retry; tell the user this action is denied by policy"})
		}
	}
	cands, err := g.o.Store.List(ctx, Query{Key: key, States: []State{StateApproved}})
	if err != nil {
		return Authorization{}, g.refuse(ctx, callID, tool, nargs, "", &RefusalError{Tool: tool, Reason: "the task store is unavailable (" + shortErr(err) + ")", Next: "retry later"})
	}
	// Human-approved tasks first: they are what a person is waiting on.
	ordered := make([]Task, 0, len(cands))
	for _, k := range []string{KindTask, KindAssessment} {
		for _, t := range cands {
			if t.Kind == k {
				ordered = append(ordered, t)
			}
		}
	}
	for _, c := range ordered {
		if c.Key != key || c.Tool != tool {
			continue
		}
		now := g.now()
		if !now.Before(c.ExpiresAt) {
			g.expire(ctx, c.ID, StateApproved)
			continue
		}
		t, err := g.o.Store.Transition(ctx, c.ID, StateApproved, func(t *Task) {
			t.State, t.StartedAt, t.UpdatedAt = StateExecuting, now, now
		})
		if errors.Is(err, ErrConflict) {
			continue // another call (or replica) used it first
		}
		if err != nil {
			return Authorization{}, g.refuse(ctx, callID, tool, nargs, "", &RefusalError{Tool: tool, Reason: "the task store is unavailable (" + shortErr(err) + ")", Next: "retry later"})
		}
		rec := AuditRecord{Time: now, CallID: callID, Tool: tool, Arguments: nargs, Decision: DecisionAuthorized, Authorization: t.ID,
			Client: ClientFrom(ctx), DurationMS: g.now().Sub(start).Milliseconds()}
		if err := g.o.Audit.Write(rec); err != nil {
			// Unrecorded writes must not happen. The authorization is spent:
			// at-most-once beats running a call nobody can trace.
			g.log.Error("audit log write failed; refusing write", "tool", tool, "err", err)
			g.finishState(ctx, t.ID, StateFailed, "not executed: the audit log could not be written")
			return Authorization{}, &RefusalError{Tool: tool, Reason: "the audit log cannot be written, so no write may run", Next: "tell the operator; authorization " + t.ID + " was withdrawn"}
		}
		markAudited(ctx)
		return Authorization{TaskID: t.ID, Kind: t.Kind, CallID: callID, Tool: tool, Arguments: nargs, Action: t.Action, Started: now}, nil
	}
	return Authorization{}, g.refuse(ctx, callID, tool, nargs, key, nil)
}

// refuse audits a refusal and returns it; with r nil it explains, from the
// tasks bound to key, why there is no authorization.
func (g *Gate) refuse(ctx context.Context, callID, tool string, args map[string]any, key string, r *RefusalError) error {
	if r == nil {
		r = g.explain(ctx, tool, key)
	}
	g.audit(ctx, AuditRecord{CallID: callID, Tool: tool, Arguments: args, Decision: DecisionRefused, Error: r.Error()})
	return r
}

func (g *Gate) explain(ctx context.Context, tool, key string) *RefusalError {
	assess := fmt.Sprintf("call assess_risk with tool %q and exactly these arguments; if it recommends auto, call %s again with the same arguments within %s; if it recommends review, call queue_task and wait for a human to approve", tool, tool, g.o.AssessmentTTL)
	r := &RefusalError{Tool: tool, Reason: "there is no authorization for this exact call (tool and arguments)", Next: assess}
	ts, err := g.o.Store.List(ctx, Query{Key: key})
	if err != nil || len(ts) == 0 {
		return r
	}
	latest := ts[len(ts)-1]
	for _, t := range ts {
		if t.State == StatePending && t.Kind == KindTask {
			r.Reason = fmt.Sprintf("task %s for this call is still waiting for approval", t.ID)
			r.Next = "wait until a human approves it" + g.howToApprove(t.ID) + ", then call again with exactly the same arguments"
			return r
		}
	}
	switch latest.State {
	case StateExecuting, StateDone, StateFailed:
		if !latest.StartedAt.IsZero() {
			r.Reason = fmt.Sprintf("the authorization for this call (%s) was already used at %s; each authorization works once", latest.ID, latest.StartedAt.Format(time.RFC3339))
			r.Next = "if it really must run again, " + assess
		}
	case StateExpired:
		r.Reason = fmt.Sprintf("the authorization for this call (%s) expired", latest.ID)
	case StateRejected:
		r.Reason = fmt.Sprintf("task %s for this call was rejected by %s", latest.ID, latest.RejectedBy)
		r.Next = "do not retry; ask the user how to proceed"
	}
	return r
}

func (g *Gate) howToApprove(id string) string {
	if g.o.Approval == ApprovalOutOfBand {
		return fmt.Sprintf(" (out-of-band: `shepherd tasks approve %s`)", id)
	}
	return fmt.Sprintf(" (the user can tell you to call approve_task %s)", id)
}

// Finish records the outcome of an authorized write: task state, audit
// record with duration, and an outcome document in Cortex so the next
// assessment of a similar action knows what happened.
func (g *Gate) Finish(ctx context.Context, auth Authorization, result string, execErr error) error {
	now := g.now()
	state, outcome, text := StateDone, cortex.OutcomeSucceeded, result
	if execErr != nil {
		state, outcome, text = StateFailed, cortex.OutcomeFailed, execErr.Error()
	}
	text = MaskText(truncate(text, maxAuditResult))
	_, serr := g.o.Store.Transition(ctx, auth.TaskID, StateExecuting, func(t *Task) {
		t.State, t.Result, t.FinishedAt, t.UpdatedAt = state, text, now, now
	})
	rec := AuditRecord{CallID: auth.CallID, Tool: auth.Tool, Arguments: auth.Arguments, Decision: DecisionExecuted,
		Authorization: auth.TaskID, DurationMS: now.Sub(auth.Started).Milliseconds()}
	if execErr != nil {
		rec.Error = text
	} else {
		rec.Result = text
	}
	g.audit(ctx, rec)
	if g.o.Memory != nil {
		octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.o.RiskTimeout)
		err := g.o.Memory.RecordOutcome(octx, cortex.OutcomeRecord{
			ID: "outcome-" + auth.TaskID, Action: auth.Action, Tool: auth.Tool, Arguments: MaskArgs(auth.Arguments),
			Outcome: outcome, Details: text, Cluster: g.o.Cluster, When: now,
		})
		cancel()
		if err != nil {
			g.log.Warn("could not record outcome in Cortex", "task", auth.TaskID, "err", MaskText(err.Error()))
		}
	}
	if serr != nil {
		return fmt.Errorf("finish task %s: %w", auth.TaskID, serr)
	}
	return nil
}

func (g *Gate) finishState(ctx context.Context, id string, s State, result string) {
	now := g.now()
	if _, err := g.o.Store.Transition(ctx, id, StateExecuting, func(t *Task) {
		t.State, t.Result, t.FinishedAt, t.UpdatedAt = s, result, now, now
	}); err != nil {
		g.log.Error("could not close task", "task", id, "err", err)
	}
}

func (g *Gate) expire(ctx context.Context, id string, from State) {
	now := g.now()
	_, err := g.o.Store.Transition(ctx, id, from, func(t *Task) {
		t.State, t.UpdatedAt = StateExpired, now
	})
	if err != nil && !errors.Is(err, ErrConflict) {
		g.log.Warn("could not expire task", "task", id, "err", err)
	}
}

// QueueInput is a request for human approval.
type QueueInput struct {
	Action       string
	Reason       string
	Tool         string
	Args         map[string]any
	AssessmentID string  // reuse this assessment's score if it was for the same call
	Facts        []Floor // as for Assess
}

// Queue stores a task for a human to approve. A task that names a tool
// authorizes, once approved, exactly one run of that exact call.
func (g *Gate) Queue(ctx context.Context, in QueueInput) (Task, error) {
	start := g.now()
	in.Action, in.Reason, in.Tool = strings.TrimSpace(in.Action), strings.TrimSpace(in.Reason), strings.TrimSpace(in.Tool)
	if in.Action == "" || in.Reason == "" {
		return Task{}, fmt.Errorf("queue: %w: action and reason are both required", ErrBadRequest)
	}
	for what, v := range map[string]string{"action": in.Action, "reason": in.Reason} {
		if err := humanText(v); err != nil {
			return Task{}, fmt.Errorf("queue: %w: %s %v", ErrBadRequest, what, err)
		}
	}
	var key, cj string
	if in.Tool != "" {
		var err error
		if key, cj, err = g.canonical(in.Tool, in.Args); err != nil {
			return Task{}, fmt.Errorf("queue: %w: %v", ErrBadRequest, err)
		}
	}
	a, ok := g.recall(in.AssessmentID)
	if !ok || a.key != key || a.Tool != in.Tool || len(in.Facts) > 0 {
		var err error
		if a, err = g.assess(ctx, AssessInput{Action: in.Action, Tool: in.Tool, Args: in.Args, Facts: in.Facts}); err != nil {
			return Task{}, err
		}
	}
	for _, f := range a.Floors {
		if f.Min == cortex.Reject {
			return Task{}, fmt.Errorf("queue: %w: %s; this cannot be approved", ErrDenied, f.Reason)
		}
	}
	now := g.now()
	t := Task{
		ID: newID("t-"), Kind: KindTask, Action: in.Action, Reason: in.Reason, Tool: in.Tool, Key: key,
		Recommendation: a.Recommendation, Score: a.Score, Reasoning: a.Reasoning,
		State: StatePending, CreatedBy: ClientFrom(ctx), CreatedAt: now, ExpiresAt: now.Add(g.o.TaskTTL), UpdatedAt: now,
	}
	if cj != "" {
		t.Arguments = []byte(cj)
	}
	if err := g.o.Store.Create(ctx, t); err != nil {
		return Task{}, fmt.Errorf("queue: %w", err)
	}
	t.Version = 1
	g.audit(ctx, AuditRecord{Tool: "queue_task", Arguments: map[string]any{"action": t.Action, "reason": t.Reason, "tool": t.Tool, "arguments": t.Args()},
		Decision: DecisionAllowed, Authorization: t.ID, Result: "queued " + t.ID, DurationMS: g.now().Sub(start).Milliseconds()})
	return t, nil
}

// Approve moves a pending task to approved. Over ChannelChat it is refused
// in out-of-band mode. Approving twice, approving an expired or unknown task
// and approving a task that policy now denies all fail.
func (g *Gate) Approve(ctx context.Context, id, who, channel string) (Task, error) {
	id = strings.TrimSpace(id)
	if who == "" {
		who = ClientFrom(ctx)
	}
	if channel != ChannelAdmin && channel != ChannelChat {
		return Task{}, fmt.Errorf("approve: %w: unknown channel %q", ErrBadRequest, channel)
	}
	t, err := g.approve(ctx, id, who, channel)
	res := "approved"
	if err != nil {
		res = ""
	}
	g.audit(ctx, AuditRecord{Tool: "approve_task", Arguments: map[string]any{"id": id, "channel": channel, "who": who},
		Decision: DecisionAllowed, Authorization: id, Result: res, Error: errText(err)})
	return t, err
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func (g *Gate) approve(ctx context.Context, id, who, channel string) (Task, error) {
	if channel == ChannelChat && g.o.Approval == ApprovalOutOfBand {
		return Task{}, ErrOutOfBand
	}
	t, err := g.o.Store.Get(ctx, id)
	if errors.Is(err, ErrNotFound) || (err == nil && t.Kind != KindTask) {
		return Task{}, fmt.Errorf("approve: no task with id %.64q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Task{}, fmt.Errorf("approve %s: %w", id, err)
	}
	for _, f := range g.o.Floors.Floors(t.Tool, t.Args()) {
		if f.Min == cortex.Reject {
			return Task{}, fmt.Errorf("approve %s: %w: %s", id, ErrDenied, f.Reason)
		}
	}
	now := g.now()
	if t.State == StatePending && !now.Before(t.ExpiresAt) {
		g.expire(ctx, id, StatePending)
		return Task{}, fmt.Errorf("approve %s: %w at %s; queue it again if still needed", id, ErrExpired, t.ExpiresAt.Format(time.RFC3339))
	}
	nt, err := g.o.Store.Transition(ctx, id, StatePending, func(t *Task) {
		t.State, t.ApprovedBy, t.ApprovedVia, t.ApprovedAt, t.UpdatedAt = StateApproved, who, channel, now, now
	})
	if errors.Is(err, ErrConflict) {
		return Task{}, fmt.Errorf("approve %s: %w", id, stateErr(nt))
	}
	if err != nil {
		return Task{}, fmt.Errorf("approve %s: %w", id, err)
	}
	return nt, nil
}

// stateErr explains why a task cannot move, from its current state.
func stateErr(t Task) error {
	switch t.State {
	case StateApproved:
		return fmt.Errorf("%w: it was already approved by %s at %s", ErrConflict, t.ApprovedBy, t.ApprovedAt.Format(time.RFC3339))
	case StateExecuting, StateDone, StateFailed:
		return fmt.Errorf("%w: it was already approved and used (%s)", ErrConflict, t.State)
	case StateRejected:
		return fmt.Errorf("%w: it was rejected by %s", ErrConflict, t.RejectedBy)
	case StateExpired:
		return fmt.Errorf("%w: it expired", ErrExpired)
	}
	return fmt.Errorf("%w: it is %s", ErrConflict, t.State)
}

// Reject closes a pending task without running it; allowed on any channel
// because saying no is always safe.
func (g *Gate) Reject(ctx context.Context, id, who string) (Task, error) {
	id = strings.TrimSpace(id)
	if who == "" {
		who = ClientFrom(ctx)
	}
	t, err := g.reject(ctx, id, who)
	g.audit(ctx, AuditRecord{Tool: "reject_task", Arguments: map[string]any{"id": id, "who": who},
		Decision: DecisionAllowed, Authorization: id, Result: map[bool]string{true: "rejected"}[err == nil], Error: errText(err)})
	return t, err
}

func (g *Gate) reject(ctx context.Context, id, who string) (Task, error) {
	t, err := g.o.Store.Get(ctx, id)
	if errors.Is(err, ErrNotFound) || (err == nil && t.Kind != KindTask) {
		return Task{}, fmt.Errorf("reject: no task with id %.64q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Task{}, fmt.Errorf("reject %s: %w", id, err)
	}
	now := g.now()
	change := func(t *Task) { t.State, t.RejectedBy, t.UpdatedAt = StateRejected, who, now }
	nt, err := g.o.Store.Transition(ctx, id, StatePending, change)
	if errors.Is(err, ErrConflict) && nt.State == StateApproved && nt.Kind == KindTask {
		// An approved but unused task may still be withdrawn.
		nt, err = g.o.Store.Transition(ctx, id, StateApproved, change)
	}
	if errors.Is(err, ErrConflict) {
		return Task{}, fmt.Errorf("reject %s: %w", id, stateErr(nt))
	}
	if err != nil {
		return Task{}, fmt.Errorf("reject %s: %w", id, err)
	}
	return nt, nil
}

// Pending lists queued tasks waiting for a human and approved ones not yet
// run, oldest first.
func (g *Gate) Pending(ctx context.Context) ([]Task, error) {
	return g.List(ctx, Query{Kind: KindTask, States: []State{StatePending, StateApproved}})
}

// List returns tasks after marking the overdue ones expired.
func (g *Gate) List(ctx context.Context, q Query) ([]Task, error) {
	if err := g.Sweep(ctx); err != nil {
		return nil, err
	}
	ts, err := g.o.Store.List(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	return ts, nil
}

// Get returns one task.
func (g *Gate) Get(ctx context.Context, id string) (Task, error) {
	return g.o.Store.Get(ctx, strings.TrimSpace(id))
}

// Sweep marks pending and approved tasks past their expiry as expired.
func (g *Gate) Sweep(ctx context.Context) error {
	ts, err := g.o.Store.List(ctx, Query{States: []State{StatePending, StateApproved}})
	if err != nil {
		return fmt.Errorf("sweep tasks: %w", err)
	}
	now := g.now()
	for _, t := range ts {
		if !now.Before(t.ExpiresAt) {
			g.expire(ctx, t.ID, t.State)
		}
	}
	return nil
}

// Recover marks tasks that have been executing for longer than olderThan as
// failed ("interrupted"). They are never retried: whether the write happened
// is unknown, and running it twice is worse than asking again.
func (g *Gate) Recover(ctx context.Context, olderThan time.Duration) (int, error) {
	ts, err := g.o.Store.List(ctx, Query{States: []State{StateExecuting}})
	if err != nil {
		return 0, fmt.Errorf("recover tasks: %w", err)
	}
	now := g.now()
	n := 0
	for _, t := range ts {
		if now.Sub(t.StartedAt) < olderThan {
			continue
		}
		_, err := g.o.Store.Transition(ctx, t.ID, StateExecuting, func(t *Task) {
			t.State, t.FinishedAt, t.UpdatedAt = StateFailed, now, now
			t.Result = "interrupted: the server stopped while this ran; it was not retried. Check the cluster and queue a new task if needed"
		})
		if err == nil {
			n++
		} else if !errors.Is(err, ErrConflict) {
			return n, fmt.Errorf("recover task %s: %w", t.ID, err)
		}
	}
	return n, nil
}

// Prune deletes finished, rejected and expired tasks older than retention,
// after expiring what is overdue.
func (g *Gate) Prune(ctx context.Context, retention time.Duration) (int, error) {
	if err := g.Sweep(ctx); err != nil {
		return 0, err
	}
	n, err := g.o.Store.Prune(ctx, g.now().Add(-retention))
	if err != nil {
		return n, fmt.Errorf("prune tasks: %w", err)
	}
	return n, nil
}

// maxHumanText caps the action and reason a human reads before approving.
const maxHumanText = 2000

// humanText refuses text that could mislead the human who approves: control
// characters (escape sequences that rewrite a terminal, carriage returns that
// overwrite a line) and bidirectional overrides that reorder what is shown.
func humanText(s string) error {
	if len(s) > maxHumanText {
		return fmt.Errorf("is longer than %d bytes", maxHumanText)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("is not valid UTF-8")
	}
	for i, r := range s {
		if (unicode.IsControl(r) && r != ' ') || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) {
			return fmt.Errorf("holds the control character %U at offset %d; write plain text on one line", r, i)
		}
	}
	return nil
}
