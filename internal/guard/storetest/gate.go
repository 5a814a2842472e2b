package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cluster-shepherd/shepherd/internal/guard"
)

// Clock is a settable clock for expiry tests.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// Now returns the current fake time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// env is one gate (one replica) over a store.
type env struct {
	gate  *guard.Gate
	mem   *Memory
	clock *Clock
	audit *guard.AuditLog
	path  string
}

func newEnv(t *testing.T, s guard.Store, mem *Memory, clock *Clock, mod func(*guard.Options)) env {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	al, err := guard.OpenAuditLog(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { al.Close() })
	o := guard.Options{
		Memory: mem, Store: s, Audit: al, Floors: guard.DefaultFloors("shepherd"),
		RiskTimeout: 200 * time.Millisecond, Clock: clock.Now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if mod != nil {
		mod(&o)
	}
	g, err := guard.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return env{gate: g, mem: mem, clock: clock, audit: al, path: path}
}

var scaleArgs = map[string]any{"namespace": "shop", "name": "web", "replicas": 3, "kind": "Deployment"}

func scale(mod func(map[string]any)) map[string]any {
	m := map[string]any{}
	for k, v := range scaleArgs {
		m[k] = v
	}
	if mod != nil {
		mod(m)
	}
	return m
}

// RunGate runs the gate's adversarial suite on a backend: nothing in it may
// ever lead to an execution that was not authorized for exactly that call.
func RunGate(t *testing.T, backing Backing) {
	ctx := guard.WithClient(context.Background(), "test-client")
	start := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	setup := func(t *testing.T, rec guard.Level, mod func(*guard.Options)) (env, func() guard.Store) {
		open := backing(t)
		return newEnv(t, open(), NewMemory(rec), &Clock{now: start}, mod), open
	}
	assess := func(t *testing.T, e env, tool string, args map[string]any) guard.Assessment {
		t.Helper()
		a, err := e.gate.Assess(ctx, guard.AssessInput{Action: "test action", Tool: tool, Args: args})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	queueApproved := func(t *testing.T, e env, args map[string]any) guard.Task {
		t.Helper()
		task, err := e.gate.Queue(ctx, guard.QueueInput{Action: "scale web", Reason: "traffic", Tool: "scale_workload", Args: args})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.gate.Approve(ctx, task.ID, "alice", guard.ChannelChat); err != nil {
			t.Fatal(err)
		}
		return task
	}
	refused := func(t *testing.T, err error, want string) {
		t.Helper()
		if !errors.Is(err, guard.ErrRefused) {
			t.Fatalf("got %v, want a refusal", err)
		}
		if want != "" && !strings.Contains(err.Error(), want) {
			t.Fatalf("refusal %q does not mention %q", err, want)
		}
	}

	t.Run("AutoAssessmentAuthorizesOnce", func(t *testing.T) {
		e, _ := setup(t, guard.Auto, nil)
		a := assess(t, e, "scale_workload", scaleArgs)
		if a.Recommendation != guard.Auto || !a.Authorized || a.ID == "" {
			t.Fatalf("assessment: %+v", a)
		}
		auth, err := e.gate.Authorize(ctx, "scale_workload", scaleArgs)
		if err != nil {
			t.Fatal(err)
		}
		if auth.TaskID != a.ID {
			t.Fatalf("authorization %s, want assessment %s", auth.TaskID, a.ID)
		}
		_, err = e.gate.Authorize(ctx, "scale_workload", scaleArgs)
		refused(t, err, "already used")
		must(t, e.gate.Finish(ctx, auth, "scaled shop/web to 3", nil))
		tk, _ := e.gate.Get(ctx, a.ID)
		if tk.State != guard.StateDone || tk.Result != "scaled shop/web to 3" {
			t.Fatalf("after finish: %+v", tk)
		}
		out := e.mem.Outcomes()
		if len(out) != 1 || out[0].Outcome != "succeeded" || out[0].Tool != "scale_workload" {
			t.Fatalf("outcomes: %+v", out)
		}
	})

	t.Run("BurstOfAutoWritesNeedsReview", func(t *testing.T) {
		e, _ := setup(t, guard.Auto, func(o *guard.Options) { o.AutoLimit, o.AutoWindow = 2, 10*time.Minute })
		web := map[string]any{"namespace": "shop", "name": "web", "kind": "Deployment"}
		api := map[string]any{"namespace": "shop", "name": "api", "kind": "Deployment"}
		db := map[string]any{"namespace": "shop", "name": "db", "kind": "Deployment"}
		// One executed, one granted and unused: two within the window.
		assess(t, e, "restart_workload", web)
		auth, err := e.gate.Authorize(ctx, "restart_workload", web)
		must(t, err)
		must(t, e.gate.Finish(ctx, auth, "restarted", nil))
		assess(t, e, "restart_workload", api)
		// Assessing the same call again replaces its grant: still two.
		if a := assess(t, e, "restart_workload", api); a.Recommendation != guard.Auto {
			t.Fatalf("re-assessing one call counted twice: %+v", a)
		}
		third := assess(t, e, "restart_workload", db)
		if third.Recommendation != guard.Review || third.Authorized || !strings.Contains(third.Reasoning, "limit 2") {
			t.Fatalf("third write in the window: %+v", third)
		}
		// Once the window has passed and the grant expired, auto again.
		e.clock.Advance(11 * time.Minute)
		if a := assess(t, e, "restart_workload", db); a.Recommendation != guard.Auto || !a.Authorized {
			t.Fatalf("after the window: %+v", a)
		}
	})

	t.Run("ConcurrentAssessmentsRespectAutoLimit", func(t *testing.T) {
		// A model issuing parallel tool calls, to one replica or several,
		// must not get more auto grants than the limit allows.
		e, open := setup(t, guard.Auto, func(o *guard.Options) { o.AutoLimit = 2 })
		e2 := newEnv(t, open(), e.mem, e.clock, func(o *guard.Options) { o.AutoLimit = 2 })
		var granted atomic.Int32
		acrossReplicas(12, e.gate, e2.gate, func(i int, g *guard.Gate) {
			args := map[string]any{"namespace": "shop", "name": fmt.Sprintf("web-%d", i), "kind": "Deployment"}
			a, err := g.Assess(ctx, guard.AssessInput{Action: "restart", Tool: "restart_workload", Args: args})
			if err != nil {
				t.Errorf("assess: %v", err)
				return
			}
			if a.Authorized {
				granted.Add(1)
			}
		})
		if n := granted.Load(); n > 2 {
			t.Fatalf("%d concurrent auto grants, limit 2", n)
		}
	})

	t.Run("StoreDownNeverAuto", func(t *testing.T) {
		for _, limit := range []int{0, 3} {
			e, open := setup(t, guard.Auto, nil)
			broken := &failingStore{Store: open()}
			b := newEnv(t, broken, e.mem, e.clock, func(o *guard.Options) { o.AutoLimit = limit })
			assess(t, e, "scale_workload", scaleArgs) // a grant exists in the store
			for _, op := range []string{"list", "transition", "create"} {
				broken.fail.Store(op)
				a, err := b.gate.Assess(ctx, guard.AssessInput{Action: "a", Tool: "scale_workload", Args: scaleArgs})
				if err == nil && (a.Recommendation == guard.Auto || a.Authorized) {
					t.Errorf("limit %d, %s failing: assessment %s authorized=%v", limit, op, a.Recommendation, a.Authorized)
				}
				if _, err := b.gate.Authorize(ctx, "scale_workload", scaleArgs); err == nil {
					t.Errorf("limit %d, %s failing: write authorized", limit, op)
				}
			}
		}
	})

	t.Run("NoAuthorizationTellsNextStep", func(t *testing.T) {
		e, _ := setup(t, guard.Auto, nil)
		_, err := e.gate.Authorize(ctx, "restart_workload", map[string]any{"namespace": "shop", "name": "web", "kind": "Deployment"})
		refused(t, err, "assess_risk")
	})

	t.Run("RepeatedAssessmentsDoNotStackAuthorizations", func(t *testing.T) {
		e, _ := setup(t, guard.Auto, nil)
		for range 3 {
			assess(t, e, "scale_workload", scaleArgs)
		}
		_, err := e.gate.Authorize(ctx, "scale_workload", scaleArgs)
		must(t, err)
		_, err = e.gate.Authorize(ctx, "scale_workload", scaleArgs)
		refused(t, err, "")
	})

	t.Run("ForgedTaskIDs", func(t *testing.T) {
		e, _ := setup(t, guard.Review, nil)
		a := assess(t, e, "scale_workload", scaleArgs)
		for _, id := range []string{"t-000000000000000000000000", "../../tasks/x", "", a.ID, "t-" + strings.Repeat("a", 200)} {
			if _, err := e.gate.Approve(ctx, id, "alice", guard.ChannelChat); !errors.Is(err, guard.ErrNotFound) {
				t.Errorf("Approve(%q): got %v, want not found", id, err)
			}
		}
		// An auto grant's id is not an approvable task either.
		e.mem.Set(guard.Auto, 0.1, "")
		a2 := assess(t, e, "scale_workload", scale(func(m map[string]any) { m["replicas"] = 2 }))
		if _, err := e.gate.Approve(ctx, a2.ID, "alice", guard.ChannelChat); !errors.Is(err, guard.ErrNotFound) {
			t.Errorf("approving an assessment id: %v", err)
		}
		_, err := e.gate.Authorize(ctx, "scale_workload", scaleArgs)
		refused(t, err, "")
	})

	t.Run("ApproveTwice", func(t *testing.T) {
		e, _ := setup(t, guard.Review, nil)
		tk := queueApproved(t, e, scaleArgs)
		_, err := e.gate.Approve(ctx, tk.ID, "bob", guard.ChannelChat)
		if !errors.Is(err, guard.ErrConflict) || !strings.Contains(err.Error(), "already approved by alice") {
			t.Fatalf("second approve: %v", err)
		}
		auth, err := e.gate.Authorize(ctx, "scale_workload", scaleArgs)
		must(t, err)
		if auth.TaskID != tk.ID {
			t.Fatalf("used %s, want %s", auth.TaskID, tk.ID)
		}
		if _, err := e.gate.Approve(ctx, tk.ID, "bob", guard.ChannelChat); !errors.Is(err, guard.ErrConflict) {
			t.Fatalf("approve after use: %v", err)
		}
		_, err = e.gate.Authorize(ctx, "scale_workload", scaleArgs)
		refused(t, err, "already used")
	})

	t.Run("ChangedArgumentsAfterApproval", func(t *testing.T) {
		e, _ := setup(t, guard.Review, nil)
		queueApproved(t, e, scaleArgs)
		for name, args := range map[string]map[string]any{
			"replicas":  scale(func(m map[string]any) { m["replicas"] = 30 }),
			"namespace": scale(func(m map[string]any) { m["namespace"] = "shop2" }),
			"name":      scale(func(m map[string]any) { m["name"] = "web-canary" }),
			"kind":      scale(func(m map[string]any) { m["kind"] = "StatefulSet" }),
			"extra":     scale(func(m map[string]any) { m["force"] = true }),
			"missing":   scale(func(m map[string]any) { delete(m, "kind") }),
		} {
			_, err := e.gate.Authorize(ctx, "scale_workload", args)
			if !errors.Is(err, guard.ErrRefused) {
				t.Fatalf("%s changed: got %v, want refusal", name, err)
			}
		}
		_, err := e.gate.Authorize(ctx, "restart_workload", scaleArgs)
		refused(t, err, "")
		// The same call spelled differently is the same call.
		_, err = e.gate.Authorize(ctx, "scale_workload", map[string]any{"kind": "Deployment", "replicas": json.Number("3.0"), "name": "web", "namespace": "shop"})
		must(t, err)
	})

	t.Run("ExpiredAuthorizations", func(t *testing.T) {
		e, _ := setup(t, guard.Auto, nil)
		assess(t, e, "scale_workload", scaleArgs)
		e.clock.Advance(10*time.Minute + time.Second)
		_, err := e.gate.Authorize(ctx, "scale_workload", scaleArgs)
		refused(t, err, "expired")

		e.mem.Set(guard.Review, 0.6, "")
		pending, err := e.gate.Queue(ctx, guard.QueueInput{Action: "a", Reason: "r", Tool: "scale_workload", Args: scaleArgs})
		must(t, err)
		approved := queueApproved(t, e, scale(func(m map[string]any) { m["replicas"] = 4 }))
		e.clock.Advance(24*time.Hour + time.Second)
		if _, err := e.gate.Approve(ctx, pending.ID, "alice", guard.ChannelChat); !errors.Is(err, guard.ErrExpired) {
			t.Fatalf("approve expired: %v", err)
		}
		_, err = e.gate.Authorize(ctx, "scale_workload", scale(func(m map[string]any) { m["replicas"] = 4 }))
		refused(t, err, "")
		got, _ := e.gate.Get(ctx, approved.ID)
		if got.State != guard.StateExpired {
			t.Fatalf("approved task past expiry is %s", got.State)
		}
	})

	t.Run("ConcurrentApprovals", func(t *testing.T) {
		e, open := setup(t, guard.Review, nil)
		e2 := newEnv(t, open(), e.mem, e.clock, nil)
		tk, err := e.gate.Queue(ctx, guard.QueueInput{Action: "a", Reason: "r", Tool: "scale_workload", Args: scaleArgs})
		must(t, err)
		var wins atomic.Int32
		acrossReplicas(16, e.gate, e2.gate, func(i int, g *guard.Gate) {
			if _, err := g.Approve(ctx, tk.ID, fmt.Sprintf("human-%d", i), guard.ChannelAdmin); err == nil {
				wins.Add(1)
			}
		})
		if wins.Load() != 1 {
			t.Fatalf("%d approvals succeeded, want 1", wins.Load())
		}
	})

	t.Run("ConcurrentAuthorizeAcrossReplicas", func(t *testing.T) {
		e, open := setup(t, guard.Review, nil)
		e2 := newEnv(t, open(), e.mem, e.clock, nil)
		queueApproved(t, e, scaleArgs)
		var wins atomic.Int32
		acrossReplicas(16, e.gate, e2.gate, func(_ int, g *guard.Gate) {
			if _, err := g.Authorize(ctx, "scale_workload", scaleArgs); err == nil {
				wins.Add(1)
			} else if !errors.Is(err, guard.ErrRefused) {
				t.Errorf("authorize: %v", err)
			}
		})
		if wins.Load() != 1 {
			t.Fatalf("%d executions authorized, want 1", wins.Load())
		}
	})

	t.Run("CortexDownFailsClosed", func(t *testing.T) {
		e, _ := setup(t, guard.Auto, nil)
		e.mem.Fail(errors.New("dial tcp 10.0.0.7:8080: connection refused"))
		a := assess(t, e, "restart_workload", map[string]any{"namespace": "shop", "name": "web", "kind": "Deployment"})
		if a.Recommendation != guard.Review || a.Authorized || a.CortexAvailable {
			t.Fatalf("assessment with Cortex down: %+v", a)
		}
		_, err := e.gate.Authorize(ctx, "restart_workload", map[string]any{"namespace": "shop", "name": "web", "kind": "Deployment"})
		refused(t, err, "")
	})

	t.Run("CortexSlowFailsClosed", func(t *testing.T) {
		e, _ := setup(t, guard.Auto, nil)
		e.mem.Slow(2 * time.Second)
		began := time.Now()
		a := assess(t, e, "scale_workload", scaleArgs)
		if a.Recommendation != guard.Review || a.Authorized || !strings.Contains(a.Reasoning, "timed out") {
			t.Fatalf("assessment with slow Cortex: %+v", a)
		}
		if time.Since(began) > time.Second {
			t.Fatalf("assessment waited %s for a slow Cortex", time.Since(began))
		}
	})

	t.Run("NoCortexFailsClosed", func(t *testing.T) {
		e, _ := setup(t, guard.Auto, func(o *guard.Options) { o.Memory = nil })
		if a := assess(t, e, "scale_workload", scaleArgs); a.Recommendation != guard.Review || a.Authorized {
			t.Fatalf("assessment without Cortex: %+v", a)
		}
	})

	t.Run("GarbageRecommendationIsReview", func(t *testing.T) {
		e, _ := setup(t, guard.Level("yes-please"), nil)
		if a := assess(t, e, "scale_workload", scaleArgs); a.Recommendation != guard.Review || a.Authorized {
			t.Fatalf("assessment: %+v", a)
		}
	})

	t.Run("FloorsAreNeverLowered", func(t *testing.T) {
		e, _ := setup(t, guard.Auto, nil)
		for _, c := range []struct {
			tool string
			args map[string]any
		}{
			{"scale_workload", scale(func(m map[string]any) { m["replicas"] = 0 })},
			{"run_flux_op", map[string]any{"operation": "suspend", "namespace": "apps", "name": "shop"}},
			{"delete_crds", map[string]any{"domain": "example.com"}},
			{"restart_workload", map[string]any{"namespace": "kube-system", "name": "coredns", "kind": "Deployment"}},
			{"restart_workload", map[string]any{"namespace": "shepherd", "name": "shepherd", "kind": "Deployment"}},
			{"run_flux_op", map[string]any{"operation": "reconcile", "namespace": "flux-system", "name": "flux-system"}},
		} {
			a := assess(t, e, c.tool, c.args)
			if a.Recommendation != guard.Review || a.Authorized {
				t.Errorf("%s %v: %s authorized=%v", c.tool, c.args, a.Recommendation, a.Authorized)
			}
			if _, err := e.gate.Authorize(ctx, c.tool, c.args); !errors.Is(err, guard.ErrRefused) {
				t.Errorf("%s %v ran on a review floor: %v", c.tool, c.args, err)
			}
		}
		e.mem.Set(guard.Reject, 0.95, "scaling web to 3 caused an outage last week")
		if a := assess(t, e, "scale_workload", scaleArgs); a.Recommendation != guard.Reject || !strings.Contains(a.Reasoning, "outage") {
			t.Errorf("history should raise to reject: %+v", a)
		}
	})

	t.Run("CallerFactsRaise", func(t *testing.T) {
		e, _ := setup(t, guard.Auto, nil)
		a, err := e.gate.Assess(ctx, guard.AssessInput{Action: "drop example CRDs", Tool: "delete_crds", Args: map[string]any{"domain": "example.com"},
			Facts: []guard.Floor{{Min: guard.Review, Reason: "12 custom resources still exist"}}})
		must(t, err)
		if a.Recommendation != guard.Review || !strings.Contains(a.Reasoning, "12 custom resources still exist") {
			t.Fatalf("assessment: %+v", a)
		}
	})

	t.Run("DenyListIsReject", func(t *testing.T) {
		e, open := setup(t, guard.Auto, nil)
		tk := queueApproved(t, e, scaleArgs)
		// The operator adds a deny rule after approval: the approved task
		// must not run anymore.
		deny := newEnv(t, open(), e.mem, e.clock, func(o *guard.Options) { o.Floors.Deny = []string{"scale_workload:shop/*"} })
		_, err := deny.gate.Authorize(ctx, "scale_workload", scaleArgs)
		refused(t, err, "denied by policy")
		if got, _ := deny.gate.Get(ctx, tk.ID); got.State != guard.StateApproved {
			t.Fatalf("denied call consumed the task: %s", got.State)
		}
		if a := assess(t, deny, "scale_workload", scaleArgs); a.Recommendation != guard.Reject || a.Authorized {
			t.Fatalf("assessment: %+v", a)
		}
		if _, err := deny.gate.Queue(ctx, guard.QueueInput{Action: "a", Reason: "r", Tool: "scale_workload", Args: scaleArgs}); !errors.Is(err, guard.ErrDenied) {
			t.Fatalf("queue denied call: %v", err)
		}
	})

	t.Run("OutOfBandApproval", func(t *testing.T) {
		e, _ := setup(t, guard.Review, func(o *guard.Options) { o.Approval = guard.ApprovalOutOfBand })
		tk, err := e.gate.Queue(ctx, guard.QueueInput{Action: "a", Reason: "r", Tool: "scale_workload", Args: scaleArgs})
		must(t, err)
		if _, err := e.gate.Approve(ctx, tk.ID, "model", guard.ChannelChat); !errors.Is(err, guard.ErrOutOfBand) {
			t.Fatalf("chat approval in out-of-band mode: %v", err)
		}
		_, err = e.gate.Authorize(ctx, "scale_workload", scaleArgs)
		refused(t, err, "shepherd tasks approve "+tk.ID)
		got, err := e.gate.Approve(ctx, tk.ID, "alice", guard.ChannelAdmin)
		must(t, err)
		if got.ApprovedBy != "alice" || got.ApprovedVia != guard.ChannelAdmin {
			t.Fatalf("approved: %+v", got)
		}
		_, err = e.gate.Authorize(ctx, "scale_workload", scaleArgs)
		must(t, err)
	})

	t.Run("RejectedTask", func(t *testing.T) {
		e, _ := setup(t, guard.Review, nil)
		tk, err := e.gate.Queue(ctx, guard.QueueInput{Action: "a", Reason: "r", Tool: "scale_workload", Args: scaleArgs})
		must(t, err)
		_, err = e.gate.Reject(ctx, tk.ID, "bob")
		must(t, err)
		if _, err := e.gate.Approve(ctx, tk.ID, "alice", guard.ChannelChat); !errors.Is(err, guard.ErrConflict) {
			t.Fatalf("approve after reject: %v", err)
		}
		_, err = e.gate.Authorize(ctx, "scale_workload", scaleArgs)
		refused(t, err, "rejected by bob")
	})

	t.Run("InterruptedExecutionNeverReruns", func(t *testing.T) {
		e, _ := setup(t, guard.Review, nil)
		tk := queueApproved(t, e, scaleArgs)
		_, err := e.gate.Authorize(ctx, "scale_workload", scaleArgs)
		must(t, err)
		// The process "dies" here: no Finish. A restart recovers.
		e.clock.Advance(time.Hour)
		n, err := e.gate.Recover(ctx, time.Minute)
		if err != nil || n != 1 {
			t.Fatalf("recover = %d, %v", n, err)
		}
		got, _ := e.gate.Get(ctx, tk.ID)
		if got.State != guard.StateFailed || !strings.Contains(got.Result, "interrupted") {
			t.Fatalf("interrupted task: %+v", got)
		}
		_, err = e.gate.Authorize(ctx, "scale_workload", scaleArgs)
		refused(t, err, "")
	})

	t.Run("AuditFailureRefusesWrite", func(t *testing.T) {
		e, _ := setup(t, guard.Review, nil)
		tk := queueApproved(t, e, scaleArgs)
		e.audit.Close()
		_, err := e.gate.Authorize(ctx, "scale_workload", scaleArgs)
		refused(t, err, "audit log")
		got, _ := e.gate.Get(ctx, tk.ID)
		if got.State != guard.StateFailed {
			t.Fatalf("task after audit failure: %s", got.State)
		}
	})

	t.Run("QueueRefusesTextThatMisleadsTheApprover", func(t *testing.T) {
		e, _ := setup(t, guard.Review, nil)
		for _, in := range []guard.QueueInput{
			{Action: "scale shop/api to 3\x1b[2K\rscale shop/api to 0", Reason: "r"},
			{Action: "a", Reason: "fine\rreally fine"},
			{Action: "restart \u202eipa/pohs", Reason: "r"},
			{Action: "a", Reason: strings.Repeat("x", 3000)},
		} {
			in.Tool, in.Args = "scale_workload", scaleArgs
			if _, err := e.gate.Queue(ctx, in); !errors.Is(err, guard.ErrBadRequest) {
				t.Errorf("queue %q / %q: %v, want a bad request", in.Action, in.Reason, err)
			}
		}
		p, err := e.gate.Pending(ctx)
		must(t, err)
		if len(p) != 0 {
			t.Fatalf("refused tasks were stored: %+v", p)
		}
		// assess_risk's action becomes the task's: the same rule, refused
		// before Cortex is asked (a text it refuses is not an outage).
		before := len(e.mem.Requests())
		for _, action := range []string{strings.Repeat("restart shop/api ", 300), "restart \u202eipa/pohs", "a\x1b[2Kb"} {
			if _, err := e.gate.Assess(ctx, guard.AssessInput{Action: action, Tool: "scale_workload", Args: scaleArgs}); !errors.Is(err, guard.ErrBadRequest) {
				t.Errorf("assess %.40q: %v, want a bad request", action, err)
			}
		}
		if len(e.mem.Requests()) != before {
			t.Fatal("Cortex was asked about a refused action")
		}
	})

	t.Run("QueueReusesAssessment", func(t *testing.T) {
		e, _ := setup(t, guard.Review, nil)
		e.mem.Set(guard.Review, 0.7, "similar change failed on 2026-04-02")
		a := assess(t, e, "scale_workload", scaleArgs)
		before := len(e.mem.Requests())
		tk, err := e.gate.Queue(ctx, guard.QueueInput{Action: "a", Reason: "r", Tool: "scale_workload", Args: scaleArgs, AssessmentID: a.ID})
		must(t, err)
		if len(e.mem.Requests()) != before || tk.Score != a.Score || tk.Reasoning != a.Reasoning {
			t.Fatalf("queue did not reuse the assessment: %+v", tk)
		}
		p, err := e.gate.Pending(ctx)
		must(t, err)
		if len(p) != 1 || p[0].ID != tk.ID || p[0].Args()["replicas"] == nil {
			t.Fatalf("pending: %+v", p)
		}
		// Approved and not yet run: still listed, so the model knows it may
		// call the tool; once run, gone.
		_, err = e.gate.Approve(ctx, tk.ID, "alice", guard.ChannelChat)
		must(t, err)
		p, err = e.gate.Pending(ctx)
		must(t, err)
		if len(p) != 1 || p[0].State != guard.StateApproved {
			t.Fatalf("approved task not listed: %+v", p)
		}
		auth, err := e.gate.Authorize(ctx, "scale_workload", scaleArgs)
		must(t, err)
		must(t, e.gate.Finish(ctx, auth, "scaled", nil))
		if p, err = e.gate.Pending(ctx); err != nil || len(p) != 0 {
			t.Fatalf("executed task still listed: %+v %v", p, err)
		}
	})

	t.Run("DefaultsMakeOneCall", func(t *testing.T) {
		e, _ := setup(t, guard.Review, func(o *guard.Options) {
			o.Defaults = func(tool string, args map[string]any) map[string]any {
				if tool == "scale_workload" && args["kind"] == nil {
					args["kind"] = "Deployment"
				}
				return args
			}
		})
		noKind := scale(func(m map[string]any) { delete(m, "kind") })
		queueApproved(t, e, noKind)
		if _, ok := noKind["kind"]; ok {
			t.Fatal("Defaults changed the caller's map")
		}
		_, err := e.gate.Authorize(ctx, "scale_workload", scaleArgs)
		must(t, err)
	})

	t.Run("FailedWriteRecorded", func(t *testing.T) {
		e, _ := setup(t, guard.Auto, nil)
		assess(t, e, "scale_workload", scaleArgs)
		auth, err := e.gate.Authorize(ctx, "scale_workload", scaleArgs)
		must(t, err)
		must(t, e.gate.Finish(ctx, auth, "", errors.New("deployments.apps \"web\" is forbidden")))
		got, _ := e.gate.Get(ctx, auth.TaskID)
		if got.State != guard.StateFailed || !strings.Contains(got.Result, "forbidden") {
			t.Fatalf("failed task: %+v", got)
		}
		if out := e.mem.Outcomes(); len(out) != 1 || out[0].Outcome != "failed" {
			t.Fatalf("outcome: %+v", out)
		}
	})
}

// failingStore fails one kind of operation, chosen at run time.
type failingStore struct {
	guard.Store
	fail atomic.Value // "list", "create", "transition" or ""
}

func (f *failingStore) is(op string) bool { s, _ := f.fail.Load().(string); return s == op }

var errStoreDown = errors.New("store is down")

func (f *failingStore) List(ctx context.Context, q guard.Query) ([]guard.Task, error) {
	if f.is("list") {
		return nil, errStoreDown
	}
	return f.Store.List(ctx, q)
}

func (f *failingStore) Create(ctx context.Context, t guard.Task) error {
	if f.is("create") {
		return errStoreDown
	}
	return f.Store.Create(ctx, t)
}

func (f *failingStore) Transition(ctx context.Context, id string, from guard.State, change func(*guard.Task)) (guard.Task, error) {
	if f.is("transition") {
		return guard.Task{}, errStoreDown
	}
	return f.Store.Transition(ctx, id, from, change)
}

// acrossReplicas runs fn n times at once, alternating between two gates on
// one store (two replicas), and waits for all.
func acrossReplicas(n int, a, b *guard.Gate, fn func(i int, g *guard.Gate)) {
	var wg sync.WaitGroup
	for i := range n {
		g := a
		if i%2 == 1 {
			g = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(i, g)
		}()
	}
	wg.Wait()
}
