// Package postgres keeps Cortex's documents, keyword index and known-error
// graph in PostgreSQL, the production pairing with Qdrant for vectors.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
)

//go:embed migrations/*.sql
var migrations embed.FS

// ErrClosed is returned by every call made after Close.
var ErrClosed = errors.New("postgres store is closed")

// migrationLock is the advisory lock key that serialises schema changes when
// several replicas open the same database at once.
const migrationLock = 0x636f72746578 // "cortex"

// Store implements cortex.DocumentStore, cortex.GraphStore and
// cortex.VectorIndex on one connection pool.
type Store struct {
	pool   *pgxpool.Pool
	closed atomic.Bool

	vmu  sync.Mutex
	vecs vectorCache
}

var (
	_ cortex.DocumentStore = (*Store)(nil)
	_ cortex.GraphStore    = (*Store)(nil)
	_ cortex.VectorIndex   = (*Store)(nil)
)

// Open connects to dsn (a postgres:// URL or key=value string; pool settings
// such as pool_max_conns may ride along) and brings the schema up to date.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors can echo the DSN, password included.
		return nil, errors.New("postgres: invalid DSN")
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect %s: %w", cfg.ConnConfig.Host, err)
	}
	s := &Store{pool: pool}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Close releases the pool; later calls fail with ErrClosed.
func (s *Store) Close() error {
	if s.closed.CompareAndSwap(false, true) {
		s.pool.Close()
	}
	return nil
}

func (s *Store) check() error {
	if s == nil || s.pool == nil || s.closed.Load() {
		return ErrClosed
	}
	return nil
}

// migrate applies every embedded migration not yet recorded, each in its own
// transaction, under an advisory lock so concurrent Opens don't race.
func (s *Store) migrate(ctx context.Context) error {
	files, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("postgres: migrations: %w", err)
	}
	sort.Strings(files)
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("postgres: connect: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(migrationLock)); err != nil {
		return fmt.Errorf("postgres: migration lock: %w", err)
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(migrationLock))
	}()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS cortex_schema_migrations (
		version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("postgres: migrations table: %w", err)
	}
	for _, f := range files {
		name := strings.TrimPrefix(f, "migrations/")
		num, _, _ := strings.Cut(name, "_")
		version, err := strconv.Atoi(num)
		if err != nil {
			return fmt.Errorf("postgres: migration %s: name must start with a number", name)
		}
		body, err := migrations.ReadFile(f)
		if err != nil {
			return fmt.Errorf("postgres: migration %s: %w", name, err)
		}
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			var done bool
			if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM cortex_schema_migrations WHERE version = $1)", version).Scan(&done); err != nil {
				return err
			}
			if done {
				return nil
			}
			if _, err := tx.Exec(ctx, string(body)); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO cortex_schema_migrations (version) VALUES ($1)", version)
			return err
		})
		if err != nil {
			return fmt.Errorf("postgres: migration %s: %w", name, err)
		}
	}
	return nil
}

// now is the store's clock, truncated to PostgreSQL's microsecond precision so
// what a call returns equals what a later read returns.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

func stamp(t time.Time) time.Time {
	if t.IsZero() {
		return now()
	}
	return t.UTC().Truncate(time.Microsecond)
}
