package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/jackc/pgx/v5"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
)

// Limits that keep keys inside a btree entry and queries cheap.
const (
	maxQueryWords = 64
	maxK          = 1000
)

// Upsert writes docs in one transaction, replacing any document with the same
// (collection, id) but keeping its original creation time when the new one
// carries none.
func (s *Store) Upsert(ctx context.Context, docs []cortex.Document) error {
	return s.UpsertWithVectors(ctx, docs, nil)
}

// UpsertWithVectors writes documents and their vectors in one transaction, so
// a failure leaves neither half; cortex.Service uses it when the document
// store and the vector index are the same Store.
func (s *Store) UpsertWithVectors(ctx context.Context, docs []cortex.Document, items []cortex.VectorItem) error {
	if err := s.check(); err != nil {
		return err
	}
	if len(docs) == 0 && len(items) == 0 {
		return nil
	}
	for i, d := range docs {
		if err := cortex.CheckDocument(d); err != nil {
			return fmt.Errorf("upsert document %d: %w", i, err)
		}
	}
	unit, err := prepareVectors(items)
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if len(docs) > 0 {
			if err := upsertDocs(ctx, tx, docs); err != nil {
				return fmt.Errorf("upsert %d documents: %w", len(docs), err)
			}
		}
		if len(items) > 0 {
			if err := upsertVectors(ctx, tx, items, unit); err != nil {
				return fmt.Errorf("upsert %d vectors: %w", len(items), err)
			}
		}
		return nil
	})
}

func upsertDocs(ctx context.Context, tx pgx.Tx, docs []cortex.Document) error {
	b := &pgx.Batch{}
	for _, d := range docs {
		cluster := d.Cluster
		if cluster == "" {
			cluster = d.Metadata["cluster"]
		}
		meta := d.Metadata
		if meta == nil {
			meta = map[string]string{}
		}
		created := stamp(d.CreatedAt)
		updated := stamp(d.UpdatedAt)
		if d.UpdatedAt.IsZero() && created.After(updated) {
			updated = created
		}
		b.Queue(`INSERT INTO cortex_documents (collection, id, cluster, body, metadata, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (collection, id) DO UPDATE SET
				cluster = EXCLUDED.cluster, body = EXCLUDED.body, metadata = EXCLUDED.metadata,
				created_at = CASE WHEN $8 THEN cortex_documents.created_at ELSE EXCLUDED.created_at END,
				updated_at = EXCLUDED.updated_at`,
			d.Collection, d.ID, cluster, d.Text, meta, created, updated, d.CreatedAt.IsZero())
	}
	return tx.SendBatch(ctx, b).Close()
}

// Get returns one document; ok is false when there is none.
func (s *Store) Get(ctx context.Context, collection, id string) (cortex.Document, bool, error) {
	if err := s.check(); err != nil {
		return cortex.Document{}, false, err
	}
	d, err := scanDocument(s.pool.QueryRow(ctx, `SELECT `+documentColumns+`
		FROM cortex_documents WHERE collection = $1 AND id = $2`, collection, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return cortex.Document{}, false, nil
	}
	if err != nil {
		return cortex.Document{}, false, fmt.Errorf("get %s/%s: %w", collection, id, err)
	}
	return d, true, nil
}

// documentColumns are the columns scanDocument reads.
const documentColumns = `collection, id, cluster, body, metadata, created_at, updated_at`

func scanDocument(row pgx.Row) (cortex.Document, error) {
	var d cortex.Document
	if err := row.Scan(&d.Collection, &d.ID, &d.Cluster, &d.Text, &d.Metadata, &d.CreatedAt, &d.UpdatedAt); err != nil {
		return cortex.Document{}, err
	}
	if len(d.Metadata) == 0 {
		d.Metadata = nil
	}
	d.CreatedAt, d.UpdatedAt = d.CreatedAt.UTC(), d.UpdatedAt.UTC()
	return d, nil
}

// Recent returns at most limit documents of one collection and cluster
// updated at or after since, newest first, ties by id.
func (s *Store) Recent(ctx context.Context, collection, cluster string, since time.Time, limit int) ([]cortex.Document, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if limit < 0 {
		return nil, fmt.Errorf("recent %s: limit must not be negative, got %d", collection, limit)
	}
	if limit == 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT `+documentColumns+` FROM cortex_documents
		WHERE cluster = $1 AND collection = $2 AND updated_at >= $3
		ORDER BY updated_at DESC, id LIMIT $4`, cluster, collection, since, limit)
	if err != nil {
		return nil, fmt.Errorf("recent %s: %w", collection, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (cortex.Document, error) { return scanDocument(r) })
	if err != nil {
		return nil, fmt.Errorf("recent %s: %w", collection, err)
	}
	return out, nil
}

// Keyword ranks documents matching any of the query's words (OR, so a loosely
// worded question still finds something) by full-text cover density.
func (s *Store) Keyword(ctx context.Context, query string, f cortex.Filter, k int) ([]cortex.Scored, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if k < 0 {
		return nil, fmt.Errorf("keyword search: k must not be negative, got %d", k)
	}
	words := queryWords(query)
	if k == 0 || len(words) == 0 {
		return nil, nil
	}
	k = min(k, maxK)
	// The words hold only letters and digits, so joining them with the OR
	// operator cannot form any other tsquery syntax.
	tsq := strings.Join(words, " | ")
	rows, err := s.pool.Query(ctx, `SELECT collection, id, ts_rank_cd(tsv, q, 1) AS rank
		FROM cortex_documents, to_tsquery('english'::regconfig, $1) AS q
		WHERE tsv @@ q
		  AND (cardinality($2::text[]) = 0 OR collection = ANY($2))
		  AND ($3 = '' OR cluster = $3)
		ORDER BY rank DESC, updated_at DESC, collection, id
		LIMIT $4`, tsq, nonNil(f.Collections), f.Cluster, k)
	if err != nil {
		return nil, fmt.Errorf("keyword search: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (cortex.Scored, error) {
		var sc cortex.Scored
		var rank float32
		err := r.Scan(&sc.Collection, &sc.ID, &rank)
		sc.Score = float64(rank)
		return sc, err
	})
	if err != nil {
		return nil, fmt.Errorf("keyword search: %w", err)
	}
	return out, nil
}

// Count returns how many documents a collection holds, or all when empty.
func (s *Store) Count(ctx context.Context, collection string) (int, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM cortex_documents WHERE $1 = '' OR collection = $1`, collection).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count %s: %w", collection, err)
	}
	return n, nil
}

// queryWords splits a question into distinct lower-case runs of letters and
// digits, which is also how PostgreSQL's parser sees most tokens.
func queryWords(q string) []string {
	seen := map[string]bool{}
	var words []string
	for _, w := range strings.FieldsFunc(strings.ToLower(q), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	}) {
		if len(w) > 200 || seen[w] {
			continue
		}
		seen[w] = true
		words = append(words, w)
		if len(words) == maxQueryWords {
			break
		}
	}
	return words
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
