package guard

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
)

// State is where a task is in its life. Transitions only go forward:
// pending → approved → executing → done|failed, pending|approved → expired,
// pending → rejected. A task never returns to approved once executing, which
// is what makes every authorization single-use.
type State string

const (
	StatePending   State = "pending"
	StateApproved  State = "approved"
	StateExecuting State = "executing"
	StateDone      State = "done"
	StateFailed    State = "failed"
	StateRejected  State = "rejected"
	StateExpired   State = "expired"
)

// Terminal reports whether no further transition is possible.
func (s State) Terminal() bool {
	return s == StateDone || s == StateFailed || s == StateRejected || s == StateExpired
}

// Kinds of authorization record.
const (
	// KindTask is a queued task that a human approves.
	KindTask = "task"
	// KindAssessment is the single-use grant of a fresh auto assessment.
	KindAssessment = "assessment"
)

// Task is one authorization record: a queued task or an auto assessment's
// grant. Both are consumed the same way, so both share one durable store.
type Task struct {
	ID        string          `json:"id"`
	Kind      string          `json:"kind"`
	Action    string          `json:"action"`
	Reason    string          `json:"reason,omitempty"`
	Tool      string          `json:"tool,omitempty"`
	Key       string          `json:"key,omitempty"`
	Arguments json.RawMessage `json:"arguments,omitempty"`

	Recommendation cortex.Recommendation `json:"recommendation,omitempty"`
	Score          float64               `json:"score"`
	Reasoning      string                `json:"reasoning,omitempty"`

	State       State     `json:"state"`
	CreatedBy   string    `json:"created_by,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	ExpiresAt   time.Time `json:"expires_at"`
	ApprovedBy  string    `json:"approved_by,omitempty"`
	ApprovedVia string    `json:"approved_via,omitempty"`
	ApprovedAt  time.Time `json:"approved_at,omitzero"`
	RejectedBy  string    `json:"rejected_by,omitempty"`
	StartedAt   time.Time `json:"started_at,omitzero"`
	FinishedAt  time.Time `json:"finished_at,omitzero"`
	Result      string    `json:"result,omitempty"`
	UpdatedAt   time.Time `json:"updated_at"`
	// Version counts transitions; stores bump it, readers may use it to spot
	// a concurrent change.
	Version int `json:"version"`
}

// Args decodes the canonical arguments.
func (t Task) Args() map[string]any { return decodeArgs(string(t.Arguments)) }

// Store errors.
var (
	// ErrNotFound: no task with that id (also for ids that are not well formed).
	ErrNotFound = errors.New("task not found")
	// ErrConflict: the task is not in the state the transition expected.
	ErrConflict = errors.New("task state changed")
	// ErrExists: a task with that id already exists.
	ErrExists = errors.New("task already exists")
)

// Query selects tasks; zero fields match everything.
type Query struct {
	States []State
	Key    string
	Kind   string
}

func (q Query) match(t Task) bool {
	if q.Key != "" && t.Key != q.Key {
		return false
	}
	if q.Kind != "" && t.Kind != q.Kind {
		return false
	}
	if len(q.States) == 0 {
		return true
	}
	for _, s := range q.States {
		if t.State == s {
			return true
		}
	}
	return false
}

// Store keeps tasks durably. Transition is a compare-and-swap: it applies
// change only if the task is currently in state from, atomically with respect
// to every other process using the same store, and the change is durable
// before it returns.
type Store interface {
	Create(ctx context.Context, t Task) error
	Get(ctx context.Context, id string) (Task, error)
	List(ctx context.Context, q Query) ([]Task, error)
	Transition(ctx context.Context, id string, from State, change func(*Task)) (Task, error)
	// Prune deletes terminal tasks last updated before the given time.
	Prune(ctx context.Context, before time.Time) (int, error)
	Close() error
}

// newID returns an unguessable id, so a forged id can only miss.
func newID(prefix string) string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("guard: crypto/rand failed: " + err.Error())
	}
	return prefix + hex.EncodeToString(b[:])
}

// validID keeps ids usable as file names and rejects path tricks.
func validID(id string) bool {
	if len(id) < 3 || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
