package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cluster-shepherd/shepherd/internal/guard"
)

// Backing creates fresh, empty storage for one test and returns a function
// that opens a handle on it; calling it twice gives two handles on the same
// data, as two replicas (or two processes on one volume) would have.
type Backing func(t *testing.T) (open func() guard.Store)

func task(id string, state guard.State, key string, created time.Time) guard.Task {
	return guard.Task{
		ID: id, Kind: guard.KindTask, Action: "scale web to 3", Reason: "load", Tool: "scale_workload",
		Key: key, Arguments: []byte(`{"name":"web","namespace":"shop","replicas":3}`),
		State: state, CreatedAt: created, ExpiresAt: created.Add(time.Hour), UpdatedAt: created,
	}
}

// RunStore runs the store contract against a backend.
func RunStore(t *testing.T, backing Backing) {
	ctx := context.Background()
	base := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

	t.Run("CreateGetRoundTrip", func(t *testing.T) {
		s := backing(t)()
		in := task("t-one", guard.StatePending, "scale_workload:abc", base)
		in.Recommendation, in.Score, in.Reasoning = guard.Review, 0.5, "namespace shop is protected"
		if err := s.Create(ctx, in); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, "t-one")
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Arguments) != string(in.Arguments) || got.Key != in.Key || got.State != in.State ||
			!got.CreatedAt.Equal(in.CreatedAt) || !got.ExpiresAt.Equal(in.ExpiresAt) || got.Reasoning != in.Reasoning || got.Version != 1 {
			t.Fatalf("round trip changed the task:\n got %+v\nwant %+v", got, in)
		}
		if err := s.Create(ctx, in); !errors.Is(err, guard.ErrExists) {
			t.Fatalf("second create: got %v, want ErrExists", err)
		}
	})

	t.Run("UnknownAndMalformedIDs", func(t *testing.T) {
		s := backing(t)()
		for _, id := range []string{"t-missing", "../../etc/passwd", "", "T-UPPER", "x/y"} {
			if _, err := s.Get(ctx, id); !errors.Is(err, guard.ErrNotFound) {
				t.Errorf("Get(%q): got %v, want ErrNotFound", id, err)
			}
			if _, err := s.Transition(ctx, id, guard.StatePending, func(t *guard.Task) { t.State = guard.StateApproved }); !errors.Is(err, guard.ErrNotFound) {
				t.Errorf("Transition(%q): got %v, want ErrNotFound", id, err)
			}
		}
	})

	t.Run("ListFilters", func(t *testing.T) {
		s := backing(t)()
		must(t, s.Create(ctx, task("t-c", guard.StatePending, "k1", base.Add(2*time.Second))))
		must(t, s.Create(ctx, task("t-a", guard.StateApproved, "k1", base)))
		b := task("t-b", guard.StateApproved, "k2", base.Add(time.Second))
		b.Kind = guard.KindAssessment
		must(t, s.Create(ctx, b))
		cases := []struct {
			q    guard.Query
			want string
		}{
			{guard.Query{}, "t-a,t-b,t-c"},
			{guard.Query{Key: "k1"}, "t-a,t-c"},
			{guard.Query{States: []guard.State{guard.StateApproved}}, "t-a,t-b"},
			{guard.Query{States: []guard.State{guard.StateApproved, guard.StatePending}, Key: "k1"}, "t-a,t-c"},
			{guard.Query{Kind: guard.KindAssessment}, "t-b"},
			{guard.Query{States: []guard.State{guard.StateDone}}, ""},
		}
		for _, c := range cases {
			ts, err := s.List(ctx, c.q)
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(ts); got != c.want {
				t.Errorf("List(%+v) = %s, want %s", c.q, got, c.want)
			}
		}
	})

	t.Run("TransitionIsCompareAndSwap", func(t *testing.T) {
		s := backing(t)()
		must(t, s.Create(ctx, task("t-cas", guard.StatePending, "k", base)))
		got, err := s.Transition(ctx, "t-cas", guard.StatePending, func(t *guard.Task) {
			t.State, t.ApprovedBy = guard.StateApproved, "alice"
		})
		if err != nil || got.State != guard.StateApproved || got.ApprovedBy != "alice" || got.Version != 2 {
			t.Fatalf("transition: %+v %v", got, err)
		}
		cur, err := s.Transition(ctx, "t-cas", guard.StatePending, func(t *guard.Task) { t.ApprovedBy = "mallory" })
		if !errors.Is(err, guard.ErrConflict) {
			t.Fatalf("stale transition: got %v, want ErrConflict", err)
		}
		if cur.State != guard.StateApproved || cur.ApprovedBy != "alice" {
			t.Fatalf("conflict should return the current task, got %+v", cur)
		}
		reread, _ := s.Get(ctx, "t-cas")
		if reread.ApprovedBy != "alice" || reread.Version != 2 {
			t.Fatalf("stale transition changed the task: %+v", reread)
		}
	})

	t.Run("ConcurrentTransitionsOneWinner", func(t *testing.T) {
		open := backing(t)
		a, b := open(), open()
		const n = 10
		for i := range n {
			must(t, a.Create(ctx, task(fmt.Sprintf("t-race-%d", i), guard.StateApproved, "k", base)))
		}
		for i := range n {
			id := fmt.Sprintf("t-race-%d", i)
			var wins atomic.Int32
			var wg sync.WaitGroup
			for g := range 12 {
				s := a
				if g%2 == 1 {
					s = b
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := s.Transition(ctx, id, guard.StateApproved, func(t *guard.Task) { t.State = guard.StateExecuting })
					if err == nil {
						wins.Add(1)
					} else if !errors.Is(err, guard.ErrConflict) {
						t.Errorf("transition %s: %v", id, err)
					}
				}()
			}
			wg.Wait()
			if w := wins.Load(); w != 1 {
				t.Fatalf("%s: %d transitions won, want exactly 1", id, w)
			}
		}
	})

	t.Run("Prune", func(t *testing.T) {
		s := backing(t)()
		must(t, s.Create(ctx, task("t-old-done", guard.StateDone, "k", base)))
		must(t, s.Create(ctx, task("t-old-pending", guard.StatePending, "k", base)))
		must(t, s.Create(ctx, task("t-new-done", guard.StateDone, "k", base.Add(48*time.Hour))))
		n, err := s.Prune(ctx, base.Add(24*time.Hour))
		if err != nil || n != 1 {
			t.Fatalf("prune = %d, %v; want 1", n, err)
		}
		ts, _ := s.List(ctx, guard.Query{})
		if got := ids(ts); got != "t-old-pending,t-new-done" {
			t.Fatalf("after prune: %s", got)
		}
	})
}

func ids(ts []guard.Task) string {
	s := ""
	for i, t := range ts {
		if i > 0 {
			s += ","
		}
		s += t.ID
	}
	return s
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
