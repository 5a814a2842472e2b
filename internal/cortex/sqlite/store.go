// Package sqlite is Cortex's embedded backend: documents, their BM25 index
// (FTS5), their vectors and the known-error graph in one SQLite file, with no
// server and no cgo, so a fresh machine runs Cortex with nothing installed.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver

	"github.com/cluster-shepherd/shepherd/internal/cortex"
)

// ErrClosed is returned by every call made after Close.
var ErrClosed = errors.New("sqlite store is closed")

// Store implements cortex.DocumentStore, cortex.VectorIndex and
// cortex.GraphStore on one SQLite file. Vectors are kept on disk beside the
// text and, for search, in memory as one float32 matrix.
type Store struct {
	db     *sql.DB
	wmu    sync.Mutex // one writer at a time: SQLite would answer SQLITE_BUSY
	closed atomic.Bool

	vmu sync.RWMutex
	vec matrix
	// vgen is the vector generation vec reflects. Every vector write bumps
	// the generation in the file, so a Search notices another process's
	// writes (shepherd ingest beside a running serve) and reloads.
	vgen int64
	rmu  sync.Mutex // one reload at a time
}

var (
	_ cortex.DocumentStore = (*Store)(nil)
	_ cortex.VectorIndex   = (*Store)(nil)
	_ cortex.GraphStore    = (*Store)(nil)
)

const schema = `
CREATE TABLE IF NOT EXISTS documents (
	rid        INTEGER PRIMARY KEY,
	collection TEXT NOT NULL,
	id         TEXT NOT NULL,
	cluster    TEXT NOT NULL DEFAULT '',
	body       TEXT NOT NULL,
	metadata   TEXT NOT NULL DEFAULT '{}',
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	UNIQUE (collection, id)
);
-- Recent: one cluster's newest documents of a collection, read in index order.
CREATE INDEX IF NOT EXISTS documents_recent ON documents (cluster, collection, updated_at DESC, id);
CREATE TABLE IF NOT EXISTS vectors (
	collection TEXT NOT NULL,
	id         TEXT NOT NULL,
	cluster    TEXT NOT NULL DEFAULT '',
	vec        BLOB NOT NULL,
	PRIMARY KEY (collection, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS vecgen (
	one INTEGER PRIMARY KEY CHECK (one = 1),
	gen INTEGER NOT NULL
);
INSERT OR IGNORE INTO vecgen (one, gen) VALUES (1, 0);
CREATE TABLE IF NOT EXISTS known_errors (
	id         TEXT PRIMARY KEY,
	pattern    TEXT NOT NULL,
	summary    TEXT NOT NULL DEFAULT '',
	cluster    TEXT NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS solutions (
	id          TEXT PRIMARY KEY,
	description TEXT NOT NULL,
	verified    INTEGER NOT NULL DEFAULT 0,
	created_at  INTEGER NOT NULL,
	updated_at  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS error_solutions (
	error_id    TEXT NOT NULL REFERENCES known_errors(id),
	solution_id TEXT NOT NULL REFERENCES solutions(id),
	PRIMARY KEY (error_id, solution_id)
);
CREATE TABLE IF NOT EXISTS incidents (
	error_id    TEXT NOT NULL REFERENCES known_errors(id),
	document_id TEXT NOT NULL,
	added_at    INTEGER NOT NULL,
	PRIMARY KEY (error_id, document_id)
);
`

// Open opens (creating if needed) the SQLite file at path and loads its
// vectors into memory. ":memory:" gives a throwaway store for tests.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlite: path is empty")
	}
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)&_txlock=immediate"
	if path == ":memory:" {
		// Every pooled connection to ":memory:" would be its own database.
		dsn = "file:" + path + "?_pragma=foreign_keys(1)"
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if path == ":memory:" {
		db.SetMaxOpenConns(1)
	}
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: create schema in %s: %w", path, err)
	}
	s := &Store{db: db}
	if err := s.migrateFTS(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: keyword index in %s: %w", path, err)
	}
	if err := s.loadVectors(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the file; later calls fail with ErrClosed. Closing twice is
// harmless because the same Store often serves as all three interfaces.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	s.vmu.Lock()
	s.vec = matrix{}
	s.vmu.Unlock()
	return s.db.Close()
}

func (s *Store) check() error {
	if s == nil || s.db == nil || s.closed.Load() {
		return ErrClosed
	}
	return nil
}

// write runs fn in one transaction under the writer lock, then after (if
// any) once the transaction is committed, still under the lock.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error, after ...func()) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.check(); err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	for _, a := range after {
		a()
	}
	return nil
}

func now() time.Time { return time.Now().UTC() }

func toNanos(t time.Time) int64 { return t.UnixNano() }

func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

// toNanosClamped is toNanos for a time that may lie outside what int64
// nanoseconds hold (1677 to 2262), such as the zero time: it is clamped.
func toNanosClamped(t time.Time) int64 {
	switch {
	case t.Before(fromNanos(math.MinInt64)):
		return math.MinInt64
	case t.After(fromNanos(math.MaxInt64)):
		return math.MaxInt64
	}
	return toNanos(t)
}
