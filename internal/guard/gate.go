// Package guard is the server-side safety layer between the model and the
// cluster: it scores proposed writes (deterministic floors plus Cortex's
// history), hands out single-use authorizations bound to one exact call,
// keeps the durable queue of tasks awaiting a human, and writes the audit log.
package guard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
)

// Memory is the part of Cortex the gate needs; cortex.Memory satisfies it.
type Memory interface {
	Risk(ctx context.Context, req cortex.RiskRequest) (cortex.RiskResponse, error)
	RecordOutcome(ctx context.Context, rec cortex.OutcomeRecord) error
}

// Approval modes.
const (
	// ApprovalChat lets approve_task over MCP approve (a human tells the model).
	ApprovalChat = "chat"
	// ApprovalOutOfBand accepts approvals only from the admin endpoint/CLI,
	// which the model cannot reach.
	ApprovalOutOfBand = "out-of-band"
)

// Channels an approval can arrive through.
const (
	ChannelChat  = "chat"
	ChannelAdmin = "admin"
)

// Defaults for Options.
const (
	DefaultAssessmentTTL = 10 * time.Minute
	DefaultTaskTTL       = 24 * time.Hour
	DefaultRiskTimeout   = 5 * time.Second
	DefaultAutoWindow    = 10 * time.Minute
)

// Options configure a Gate. Store and Audit are required.
type Options struct {
	Memory        Memory
	Store         Store
	Audit         *AuditLog
	Floors        FloorConfig
	AssessmentTTL time.Duration // how long an auto assessment authorizes its call
	TaskTTL       time.Duration // how long a queued or approved task stays usable
	RiskTimeout   time.Duration // Cortex slower than this counts as unreachable
	Approval      string        // ApprovalChat (default) or ApprovalOutOfBand
	Cluster       string        // tags outcomes sent to Cortex
	Clock         func() time.Time
	Logger        *slog.Logger
	// Defaults, if set, fills in a tool's default arguments before a call is
	// keyed, so that queue_task (model-supplied arguments) and the write tool
	// (arguments after defaults) agree on what "the same call" is.
	Defaults func(tool string, args map[string]any) map[string]any
	// AutoLimit caps the writes an auto assessment may authorize within
	// AutoWindow (executed, running, or granted and not yet used); the next
	// one needs review. The model that confidently makes ten changes in
	// thirty seconds is the failure this exists for. 0: no limit.
	AutoLimit  int
	AutoWindow time.Duration // default 10 minutes
}

// Gate decides whether a write may run.
type Gate struct {
	o   Options
	log *slog.Logger

	mu     sync.Mutex
	recent map[string]Assessment // for queue_task's assessment reference
}

// Errors the gate returns; the text of each is written for the model.
var (
	ErrRefused    = errors.New("refused")
	ErrOutOfBand  = errors.New("approval over chat is disabled: a human must approve with `shepherd tasks approve ID` (or the admin web endpoint)")
	ErrExpired    = errors.New("task expired")
	ErrDenied     = errors.New("denied by policy")
	ErrBadRequest = errors.New("bad request")
)

// RefusalError is a refused write; Error() tells the model what to do next.
type RefusalError struct {
	Tool   string
	Reason string
	Next   string
}

func (e *RefusalError) Error() string {
	if e.Next == "" {
		return fmt.Sprintf("%s refused: %s", e.Tool, e.Reason)
	}
	return fmt.Sprintf("%s refused: %s. Next step: %s", e.Tool, e.Reason, e.Next)
}

// Is makes errors.Is(err, ErrRefused) true.
func (e *RefusalError) Is(target error) bool { return target == ErrRefused }

// New checks the options and fills in defaults.
func New(o Options) (*Gate, error) {
	if o.Store == nil {
		return nil, fmt.Errorf("guard: a task store is required")
	}
	if o.Audit == nil {
		return nil, fmt.Errorf("guard: an audit log is required")
	}
	switch o.Approval {
	case "":
		o.Approval = ApprovalChat
	case ApprovalChat, ApprovalOutOfBand:
	default:
		return nil, fmt.Errorf("guard: approval mode %q: want %q or %q", o.Approval, ApprovalChat, ApprovalOutOfBand)
	}
	if err := o.Floors.Validate(); err != nil {
		return nil, fmt.Errorf("guard: %w", err)
	}
	if o.AssessmentTTL <= 0 {
		o.AssessmentTTL = DefaultAssessmentTTL
	}
	if o.TaskTTL <= 0 {
		o.TaskTTL = DefaultTaskTTL
	}
	if o.RiskTimeout <= 0 {
		o.RiskTimeout = DefaultRiskTimeout
	}
	if o.AutoWindow <= 0 {
		o.AutoWindow = DefaultAutoWindow
	}
	if o.AutoLimit < 0 {
		return nil, fmt.Errorf("guard: auto write limit %d: want 0 (none) or more", o.AutoLimit)
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	lg := o.Logger
	if lg == nil {
		lg = slog.Default()
	}
	return &Gate{o: o, log: lg.With("component", "guard"), recent: map[string]Assessment{}}, nil
}

// ApprovalMode reports ApprovalChat or ApprovalOutOfBand.
func (g *Gate) ApprovalMode() string { return g.o.Approval }

func (g *Gate) now() time.Time { return g.o.Clock().UTC() }

func (g *Gate) canonical(tool string, args map[string]any) (string, string, error) {
	if g.o.Defaults != nil {
		cp := make(map[string]any, len(args))
		for k, v := range args {
			cp[k] = v
		}
		args = g.o.Defaults(tool, cp)
	}
	return Canonical(tool, args)
}

// Record appends an audit record for a call the gate does not see (read-only
// tools), filling in time and client. Callers of write tools must not go on
// when it fails.
func (g *Gate) Record(ctx context.Context, rec AuditRecord) error {
	if rec.Client == "" {
		rec.Client = ClientFrom(ctx)
	}
	if rec.Time.IsZero() {
		rec.Time = g.now()
	}
	err := g.o.Audit.Write(rec)
	if err == nil {
		markAudited(ctx)
	}
	return err
}

// AssessInput is a proposed action. Facts are floors the caller computed
// from the cluster (e.g. custom resources that still exist).
type AssessInput struct {
	Action string
	Tool   string
	Args   map[string]any
	Facts  []Floor
}

// Assessment is the answer to assess_risk.
type Assessment struct {
	ID               string                `json:"assessment_id"`
	Action           string                `json:"action"`
	Tool             string                `json:"tool,omitempty"`
	Arguments        map[string]any        `json:"arguments,omitempty"`
	Score            float64               `json:"score"`
	Recommendation   cortex.Recommendation `json:"recommendation"`
	Reasoning        string                `json:"reasoning"`
	Floors           []Floor               `json:"floors,omitempty"`
	SimilarIncidents []cortex.Incident     `json:"similar_incidents,omitempty"`
	CortexAvailable  bool                  `json:"cortex_available"`
	Authorized       bool                  `json:"authorized"`
	ExpiresAt        time.Time             `json:"authorization_expires_at,omitzero"`
	Next             string                `json:"next_step"`
	CreatedAt        time.Time             `json:"created_at"`

	key string
}

// floorScore is the lowest score shown for a floor, so a number never
// contradicts its recommendation.
func floorScore(r cortex.Recommendation) float64 {
	switch r {
	case cortex.Reject:
		return 1
	case cortex.Review:
		return 0.5
	}
	return 0
}

// Assess scores an action: the maximum of the floors, the caller's facts and
// Cortex. If the result is auto and a tool was named, it also grants one
// authorization for exactly that call, valid for AssessmentTTL.
func (g *Gate) Assess(ctx context.Context, in AssessInput) (Assessment, error) {
	start := g.now()
	a, err := g.assess(ctx, in)
	if err != nil {
		return Assessment{}, err
	}
	if a.Recommendation == cortex.Auto && a.Tool != "" {
		if err := g.grant(ctx, &a); err != nil {
			return Assessment{}, err
		}
	}
	a.Next = g.nextAfterAssess(a)
	g.remember(a)
	g.audit(ctx, AuditRecord{Tool: "assess_risk", Arguments: map[string]any{"action": a.Action, "tool": a.Tool, "arguments": a.Arguments},
		Decision: DecisionAllowed, Authorization: grantID(a), Result: fmt.Sprintf("%s (score %.2f)", a.Recommendation, a.Score), DurationMS: g.now().Sub(start).Milliseconds()})
	return a, nil
}

func grantID(a Assessment) string {
	if a.Authorized {
		return a.ID
	}
	return ""
}

func (g *Gate) assess(ctx context.Context, in AssessInput) (Assessment, error) {
	in.Action = strings.TrimSpace(in.Action)
	in.Tool = strings.TrimSpace(in.Tool)
	if in.Action == "" {
		return Assessment{}, fmt.Errorf("assess: %w: action is empty; describe the change in one sentence", ErrBadRequest)
	}
	// The same rule as for a queued task's action, which this text becomes:
	// and a text Cortex would refuse must not turn into "Cortex is down".
	if err := humanText(in.Action); err != nil {
		return Assessment{}, fmt.Errorf("assess: %w: action %s", ErrBadRequest, err)
	}
	a := Assessment{ID: newID("a-"), Action: in.Action, Tool: in.Tool, CreatedAt: g.now()}
	var floors []Floor
	if in.Tool != "" {
		key, cj, err := g.canonical(in.Tool, in.Args)
		if err != nil {
			return Assessment{}, fmt.Errorf("assess: %w: %v", ErrBadRequest, err)
		}
		a.key = key
		a.Arguments = decodeArgs(cj)
		floors = g.o.Floors.Floors(in.Tool, a.Arguments)
	}
	for _, f := range in.Facts {
		if f.Min != cortex.Auto && f.Min != cortex.Reject {
			f.Min = cortex.Review
		}
		floors = append(floors, f)
	}

	rec := cortex.Auto
	score := 0.0
	var reasons []string
	for _, f := range floors {
		rec = maxRec(rec, f.Min)
		if f.Min != cortex.Auto {
			reasons = append(reasons, f.Reason)
		}
	}

	resp, err := g.risk(ctx, cortex.RiskRequest{Action: MaskText(a.Action), Tool: a.Tool, Arguments: MaskArgs(a.Arguments), Cluster: g.o.Cluster})
	if err != nil {
		// Fail closed: without history nobody can say a write is routine.
		g.log.Warn("cortex risk unavailable; failing closed", "err", MaskText(err.Error()))
		f := Floor{Min: cortex.Review, Reason: "Cortex could not be asked (" + shortErr(err) + "), so this needs review"}
		floors = append(floors, f)
		rec = maxRec(rec, cortex.Review)
		reasons = append(reasons, f.Reason)
	} else {
		a.CortexAvailable = true
		r := resp.Recommendation
		if r != cortex.Auto && r != cortex.Review && r != cortex.Reject {
			reasons = append(reasons, fmt.Sprintf("Cortex gave no usable recommendation (%q)", string(r)))
			r = cortex.Review
		}
		rec = maxRec(rec, r)
		if s := resp.Score; !math.IsNaN(s) {
			score = math.Max(0, math.Min(1, s))
		}
		if resp.Reasoning != "" {
			reasons = append(reasons, "history: "+resp.Reasoning)
		}
		a.SimilarIncidents = resp.SimilarIncidents
	}
	if rec == cortex.Auto && a.Tool != "" && g.o.AutoLimit > 0 {
		if f, hit := g.burstFloor(ctx, a.key); hit {
			floors = append(floors, f)
			rec = cortex.Review
			reasons = append(reasons, f.Reason)
		}
	}
	a.Floors = floors
	a.Recommendation = rec
	a.Score = math.Max(score, floorScore(rec))
	a.Reasoning = strings.Join(reasons, "; ")
	if a.Reasoning == "" {
		a.Reasoning = noObjection
	}
	return a, nil
}

// noObjection is the reasoning of an assessment nothing argued against.
const noObjection = "no rule or past incident argues against this"

// burstFloor raises an auto assessment to review when AutoLimit writes were
// already authorized without a human within AutoWindow. It counts the
// store's grants, so replicas sharing a PostgreSQL queue share the limit;
// if it cannot count, it fails closed.
// An unused grant for the same call (key) does not count: this assessment
// replaces it.
func (g *Gate) burstFloor(ctx context.Context, key string) (Floor, bool) {
	n, err := g.countAuto(ctx, key, "")
	if err != nil {
		return Floor{Min: cortex.Review, Reason: "recent writes could not be counted (" + shortErr(err) + "), so this needs review"}, true
	}
	if n < g.o.AutoLimit {
		return Floor{}, false
	}
	return g.burstReason(n), true
}

func (g *Gate) burstReason(n int) Floor {
	return Floor{Min: cortex.Review, Reason: fmt.Sprintf("%d writes were authorized without review in the last %s (limit %d); a burst of changes needs a human to look", n, g.o.AutoWindow, g.o.AutoLimit)}
}

// countAuto counts the auto grants that use up the limit: executed within
// the window, or outstanding (granted or being granted, unexpired). Grants
// for key, other than the grant self, do not count.
func (g *Gate) countAuto(ctx context.Context, key, self string) (int, error) {
	ts, err := g.o.Store.List(ctx, Query{Kind: KindAssessment})
	if err != nil {
		return 0, err
	}
	now := g.now()
	since := now.Add(-g.o.AutoWindow)
	n := 0
	for _, t := range ts {
		outstanding := (t.State == StateApproved || t.State == StatePending) && now.Before(t.ExpiresAt) && (t.Key != key || t.ID == self)
		if outstanding || !t.StartedAt.IsZero() && t.StartedAt.After(since) {
			n++
		}
	}
	return n, nil
}

func (g *Gate) risk(ctx context.Context, req cortex.RiskRequest) (cortex.RiskResponse, error) {
	if g.o.Memory == nil {
		return cortex.RiskResponse{}, errors.New("no Cortex configured")
	}
	ctx, cancel := context.WithTimeout(ctx, g.o.RiskTimeout)
	defer cancel()
	type answer struct {
		r   cortex.RiskResponse
		err error
	}
	// A Memory that ignores its context must still not hold the gate open.
	ch := make(chan answer, 1)
	go func() {
		r, err := g.o.Memory.Risk(ctx, req)
		ch <- answer{r, err}
	}()
	select {
	case ans := <-ch:
		if ans.err == nil && ctx.Err() != nil {
			return cortex.RiskResponse{}, ctx.Err()
		}
		return ans.r, ans.err
	case <-ctx.Done():
		return cortex.RiskResponse{}, fmt.Errorf("timed out after %s", g.o.RiskTimeout)
	}
}

func shortErr(err error) string {
	s := MaskText(err.Error())
	if errors.Is(err, context.DeadlineExceeded) {
		s = "timed out"
	}
	return truncate(s, 160)
}

// grant stores the single-use authorization of an auto assessment. Older
// unused grants for the same call are withdrawn, so repeated assessments do
// not pile up permission to run the same call many times.
func (g *Gate) grant(ctx context.Context, a *Assessment) error {
	now := g.now()
	old, err := g.o.Store.List(ctx, Query{Key: a.key, Kind: KindAssessment, States: []State{StateApproved}})
	if err != nil {
		return fmt.Errorf("assess: %w", err)
	}
	for _, t := range old {
		_, err := g.o.Store.Transition(ctx, t.ID, StateApproved, func(t *Task) {
			t.State, t.UpdatedAt, t.Result = StateExpired, now, "superseded by assessment "+a.ID
		})
		if err != nil && !errors.Is(err, ErrConflict) {
			return fmt.Errorf("assess: withdraw %s: %w", t.ID, err)
		}
	}
	_, cj, _ := Canonical(a.Tool, a.Arguments)
	// The grant is stored pending (unusable, and not approvable: it is no
	// task) and counted before it becomes usable, so that assessments
	// racing on one replica or several cannot all pass the auto limit: of
	// grants stored concurrently, the last to count sees all the others.
	t := Task{
		ID: a.ID, Kind: KindAssessment, Action: a.Action, Tool: a.Tool, Key: a.key, Arguments: []byte(cj),
		Recommendation: a.Recommendation, Score: a.Score, Reasoning: a.Reasoning,
		State: StatePending, CreatedBy: ClientFrom(ctx), CreatedAt: now, ExpiresAt: now.Add(g.o.AssessmentTTL),
		ApprovedBy: "auto-assessment", ApprovedVia: "assessment", ApprovedAt: now, UpdatedAt: now,
	}
	if err := g.o.Store.Create(ctx, t); err != nil {
		return fmt.Errorf("assess: record authorization: %w", err)
	}
	if g.o.AutoLimit > 0 {
		n, err := g.countAuto(ctx, a.key, a.ID)
		if err != nil || n > g.o.AutoLimit {
			f := g.burstReason(n)
			if err != nil {
				f = Floor{Min: cortex.Review, Reason: "recent writes could not be counted (" + shortErr(err) + "), so this needs review"}
			}
			if _, err := g.o.Store.Transition(ctx, a.ID, StatePending, func(t *Task) {
				t.State, t.UpdatedAt, t.Result = StateExpired, g.now(), "withdrawn: "+f.Reason
			}); err != nil {
				g.log.Warn("could not withdraw grant", "task", a.ID, "err", err) // pending: never usable
			}
			if a.Reasoning == noObjection {
				a.Reasoning = ""
			}
			a.Floors = append(a.Floors, f)
			a.Recommendation = cortex.Review
			a.Score = math.Max(a.Score, floorScore(cortex.Review))
			a.Reasoning = strings.TrimPrefix(a.Reasoning+"; "+f.Reason, "; ")
			return nil
		}
	}
	if _, err := g.o.Store.Transition(ctx, a.ID, StatePending, func(t *Task) {
		t.State, t.UpdatedAt = StateApproved, g.now()
	}); err != nil {
		return fmt.Errorf("assess: record authorization: %w", err)
	}
	a.Authorized = true
	a.ExpiresAt = t.ExpiresAt
	return nil
}

func (g *Gate) nextAfterAssess(a Assessment) string {
	switch {
	case a.Recommendation == cortex.Reject:
		return "do not run this; it is rejected. Explain the reasoning to the user and propose a safer alternative"
	case a.Recommendation == cortex.Review && a.Tool != "":
		return fmt.Sprintf("call queue_task with the same tool and arguments (assessment_id %s) and a reason, then wait until a human approves it; then call %s with exactly these arguments", a.ID, a.Tool)
	case a.Recommendation == cortex.Review:
		return "a human must review this; call queue_task with the exact tool and arguments you intend to run"
	case a.Tool == "":
		return "name the tool and exact arguments in assess_risk to receive an authorization"
	default:
		return fmt.Sprintf("call %s with exactly these arguments before %s; the authorization works once", a.Tool, a.ExpiresAt.Format(time.RFC3339))
	}
}

func (g *Gate) remember(a Assessment) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	if len(g.recent) > 1000 {
		for id, old := range g.recent {
			if now.Sub(old.CreatedAt) > g.o.AssessmentTTL {
				delete(g.recent, id)
			}
		}
	}
	if len(g.recent) <= 2000 {
		g.recent[a.ID] = a
	}
}

func (g *Gate) recall(id string) (Assessment, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	a, ok := g.recent[id]
	if ok && g.now().Sub(a.CreatedAt) > g.o.AssessmentTTL {
		return Assessment{}, false
	}
	return a, ok
}

// audit writes a record for a call that is not itself a cluster write; a
// failure is logged loudly but does not undo what already happened.
func (g *Gate) audit(ctx context.Context, rec AuditRecord) {
	if rec.Client == "" {
		rec.Client = ClientFrom(ctx)
	}
	rec.Time = g.now()
	if err := g.o.Audit.Write(rec); err != nil {
		g.log.Error("audit log write failed", "tool", rec.Tool, "err", err)
		return
	}
	markAudited(ctx)
}
