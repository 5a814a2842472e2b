// Package pgqueue keeps the guard's tasks in PostgreSQL, so several shepherd
// replicas share one queue and one set of single-use authorizations.
package pgqueue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cluster-shepherd/shepherd/internal/guard"
)

// Store is a guard.Store on PostgreSQL. A transition locks the task's row
// (SELECT … FOR UPDATE) inside one transaction, so of two replicas racing
// for the same authorization exactly one commits.
type Store struct {
	pool *pgxpool.Pool
}

var _ guard.Store = (*Store)(nil)

// migrationLock is an arbitrary advisory-lock key that serialises schema
// creation when replicas start together.
const migrationLock = 0x5368657054736b73

const schema = `
CREATE TABLE IF NOT EXISTS shepherd_tasks (
	id         text PRIMARY KEY,
	kind       text NOT NULL,
	key        text NOT NULL DEFAULT '',
	state      text NOT NULL,
	created_at timestamptz NOT NULL,
	updated_at timestamptz NOT NULL,
	data       text NOT NULL
);
CREATE INDEX IF NOT EXISTS shepherd_tasks_key ON shepherd_tasks (key, state);
CREATE INDEX IF NOT EXISTS shepherd_tasks_state ON shepherd_tasks (state);
`

// Open connects to dsn and creates the table if needed.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx echoes the connection string in some parse errors; never pass
		// it on, it may hold a password.
		return nil, errors.New("open task store: invalid PostgreSQL connection string")
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open task store: %w", err)
	}
	s, err := New(ctx, pool)
	if err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// New uses an existing pool (closed by Close) and creates the table if needed.
func New(ctx context.Context, pool *pgxpool.Pool) (*Store, error) {
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLock)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, schema)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open task store: create schema: %w", err)
	}
	return &Store{pool: pool}, nil
}

// Create inserts a new task; ErrExists if the id is taken.
func (s *Store) Create(ctx context.Context, t guard.Task) error {
	t.Version = 1
	b, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("create task %s: %w", t.ID, err)
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO shepherd_tasks (id, kind, key, state, created_at, updated_at, data)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING`,
		t.ID, t.Kind, t.Key, string(t.State), t.CreatedAt, t.UpdatedAt, string(b))
	if err != nil {
		return fmt.Errorf("create task %s: %w", t.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("create task %s: %w", t.ID, guard.ErrExists)
	}
	return nil
}

// Get reads one task.
func (s *Store) Get(ctx context.Context, id string) (guard.Task, error) {
	var data string
	err := s.pool.QueryRow(ctx, `SELECT data FROM shepherd_tasks WHERE id = $1`, id).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return guard.Task{}, fmt.Errorf("task %q: %w", id, guard.ErrNotFound)
	}
	if err != nil {
		return guard.Task{}, fmt.Errorf("read task %s: %w", id, err)
	}
	return decode(id, data)
}

func decode(id, data string) (guard.Task, error) {
	var t guard.Task
	if err := json.Unmarshal([]byte(data), &t); err != nil {
		return guard.Task{}, fmt.Errorf("read task %s: corrupt row: %w", id, err)
	}
	return t, nil
}

// List returns matching tasks, oldest first.
func (s *Store) List(ctx context.Context, q guard.Query) ([]guard.Task, error) {
	states := make([]string, len(q.States))
	for i, st := range q.States {
		states[i] = string(st)
	}
	rows, err := s.pool.Query(ctx, `SELECT id, data FROM shepherd_tasks
		WHERE ($1 = '' OR key = $1) AND ($2 = '' OR kind = $2) AND (cardinality($3::text[]) = 0 OR state = ANY($3))
		ORDER BY created_at, id`, q.Key, q.Kind, states)
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	defer rows.Close()
	var out []guard.Task
	for rows.Next() {
		var id, data string
		if err := rows.Scan(&id, &data); err != nil {
			return nil, fmt.Errorf("list tasks: %w", err)
		}
		t, err := decode(id, data)
		if err != nil {
			return nil, fmt.Errorf("list tasks: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	return out, nil
}

// Transition applies change if the task is in state from; on ErrConflict the
// returned task is the current one.
func (s *Store) Transition(ctx context.Context, id string, from guard.State, change func(*guard.Task)) (guard.Task, error) {
	var out guard.Task
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var data string
		err := tx.QueryRow(ctx, `SELECT data FROM shepherd_tasks WHERE id = $1 FOR UPDATE`, id).Scan(&data)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("task %q: %w", id, guard.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("read task %s: %w", id, err)
		}
		t, err := decode(id, data)
		if err != nil {
			return err
		}
		if t.State != from {
			out = t
			return fmt.Errorf("task %s is %s, not %s: %w", id, t.State, from, guard.ErrConflict)
		}
		change(&t)
		t.ID = id
		t.Version++
		b, err := json.Marshal(t)
		if err != nil {
			return fmt.Errorf("update task %s: %w", id, err)
		}
		if _, err := tx.Exec(ctx, `UPDATE shepherd_tasks SET state = $2, updated_at = $3, data = $4 WHERE id = $1`,
			id, string(t.State), t.UpdatedAt, string(b)); err != nil {
			return fmt.Errorf("update task %s: %w", id, err)
		}
		out = t
		return nil
	})
	return out, err
}

// Prune deletes terminal tasks not updated since before.
func (s *Store) Prune(ctx context.Context, before time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM shepherd_tasks WHERE state = ANY($1) AND updated_at < $2`,
		[]string{string(guard.StateDone), string(guard.StateFailed), string(guard.StateRejected), string(guard.StateExpired)}, before)
	if err != nil {
		return 0, fmt.Errorf("prune tasks: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// Close closes the pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}
