package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
)

// Limits that keep queries cheap and keys sane.
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
	rows, dim, err := s.prepareVectors(items)
	if err != nil {
		return err
	}
	var gen int64
	return s.write(ctx, func(tx *sql.Tx) error {
		if err := s.checkDim(dim); err != nil {
			return fmt.Errorf("upsert %d vectors: %w", len(rows), err)
		}
		if len(docs) > 0 {
			if err := upsertDocs(ctx, tx, docs); err != nil {
				return fmt.Errorf("upsert %d documents: %w", len(docs), err)
			}
		}
		if len(rows) > 0 {
			if err := upsertVectorRows(ctx, tx, rows); err != nil {
				return fmt.Errorf("upsert %d vectors: %w", len(rows), err)
			}
			if err := tx.QueryRowContext(ctx, `UPDATE vecgen SET gen = gen + 1 RETURNING gen`).Scan(&gen); err != nil {
				return fmt.Errorf("upsert %d vectors: bump generation: %w", len(rows), err)
			}
		}
		return nil
	}, func() { s.commitVectors(rows, dim, gen) })
}

func upsertDocs(ctx context.Context, tx *sql.Tx, docs []cortex.Document) error {
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO documents (collection, id, cluster, body, metadata, created_at, updated_at)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
		ON CONFLICT (collection, id) DO UPDATE SET
			cluster = excluded.cluster, body = excluded.body, metadata = excluded.metadata,
			created_at = CASE WHEN ?8 THEN documents.created_at ELSE excluded.created_at END,
			updated_at = excluded.updated_at
		RETURNING rid`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	del, err := tx.PrepareContext(ctx, `DELETE FROM documents_fts WHERE rowid = ?`)
	if err != nil {
		return err
	}
	defer del.Close()
	ins, err := tx.PrepareContext(ctx, `INSERT INTO documents_fts (rowid, body, tags) VALUES (?, ?, ?)`)
	if err != nil {
		return err
	}
	defer ins.Close()
	for _, d := range docs {
		cluster := d.Cluster
		if cluster == "" {
			cluster = d.Metadata["cluster"]
		}
		meta := []byte("{}")
		if len(d.Metadata) > 0 {
			if meta, err = json.Marshal(d.Metadata); err != nil {
				return err
			}
		}
		t := now()
		created, updated := d.CreatedAt, d.UpdatedAt
		if created.IsZero() {
			created = t
		}
		if updated.IsZero() {
			updated = t
			if created.After(updated) {
				updated = created
			}
		}
		var rid int64
		if err := stmt.QueryRowContext(ctx, d.Collection, d.ID, cluster, d.Text, string(meta),
			toNanos(created), toNanos(updated), d.CreatedAt.IsZero()).Scan(&rid); err != nil {
			return err
		}
		if _, err := del.ExecContext(ctx, rid); err != nil {
			return err
		}
		if _, err := ins.ExecContext(ctx, rid, ftsBody(d.Text), tags(d.Collection, cluster)); err != nil {
			return err
		}
	}
	return nil
}

// Get returns one document; ok is false when there is none.
func (s *Store) Get(ctx context.Context, collection, id string) (cortex.Document, bool, error) {
	if err := s.check(); err != nil {
		return cortex.Document{}, false, err
	}
	d, err := scanDocument(s.db.QueryRowContext(ctx, `SELECT `+documentColumns+`
		FROM documents WHERE collection = ? AND id = ?`, collection, id))
	if errors.Is(err, sql.ErrNoRows) {
		return cortex.Document{}, false, nil
	}
	if err != nil {
		return cortex.Document{}, false, fmt.Errorf("get %s/%s: %w", collection, id, err)
	}
	return d, true, nil
}

// documentColumns are the columns scanDocument reads.
const documentColumns = `collection, id, cluster, body, metadata, created_at, updated_at`

func scanDocument(row interface{ Scan(...any) error }) (cortex.Document, error) {
	var d cortex.Document
	var meta string
	var created, updated int64
	if err := row.Scan(&d.Collection, &d.ID, &d.Cluster, &d.Text, &meta, &created, &updated); err != nil {
		return cortex.Document{}, err
	}
	if meta != "{}" {
		if err := json.Unmarshal([]byte(meta), &d.Metadata); err != nil {
			return cortex.Document{}, fmt.Errorf("metadata of %s/%s: %w", d.Collection, d.ID, err)
		}
	}
	d.CreatedAt, d.UpdatedAt = fromNanos(created), fromNanos(updated)
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
	rows, err := s.db.QueryContext(ctx, `SELECT `+documentColumns+` FROM documents
		WHERE cluster = ? AND collection = ? AND updated_at >= ?
		ORDER BY updated_at DESC, id LIMIT ?`, cluster, collection, toNanosClamped(since), limit)
	if err != nil {
		return nil, fmt.Errorf("recent %s: %w", collection, err)
	}
	defer rows.Close()
	var out []cortex.Document
	for rows.Next() {
		d, err := scanDocument(rows)
		if err != nil {
			return nil, fmt.Errorf("recent %s: %w", collection, err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("recent %s: %w", collection, err)
	}
	return out, nil
}

// Keyword ranks documents matching any of the query's words (OR, so a loosely
// worded question still finds something) by FTS5's bm25(), negated so that
// higher is better.
func (s *Store) Keyword(ctx context.Context, query string, f cortex.Filter, k int) ([]cortex.Scored, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if k < 0 {
		return nil, fmt.Errorf("keyword search: k must not be negative, got %d", k)
	}
	if k == 0 {
		return nil, nil
	}
	terms, err := s.selectTerms(ctx, queryTerms(query))
	if err != nil {
		return nil, fmt.Errorf("keyword search: %w", err)
	}
	if len(terms) == 0 {
		return nil, nil
	}
	// Terms are quoted (quotes doubled) and tags are hex, so no other FTS5
	// syntax can form.
	quoted := make([]string, len(terms))
	for i, t := range terms {
		quoted[i] = ftsQuote(t)
	}
	match := "{body} : (" + strings.Join(quoted, " OR ") + ")"
	if len(f.Collections) > 0 {
		ct := make([]string, len(f.Collections))
		for i, c := range f.Collections {
			ct[i] = tag("c", c)
		}
		match += " AND {tags} : (" + strings.Join(ct, " OR ") + ")"
	}
	if f.Cluster != "" {
		match += " AND {tags} : " + tag("k", f.Cluster)
	}
	q := `SELECT d.collection, d.id, f.r FROM (
			SELECT rowid AS rid, bm25(documents_fts, 1.0, 0.0) AS r FROM documents_fts
			WHERE documents_fts MATCH ? ORDER BY r LIMIT ?) f
		JOIN documents d ON d.rid = f.rid
		ORDER BY f.r, d.updated_at DESC, d.collection, d.id`
	args := []any{match, min(k, maxK)}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("keyword search: %w", err)
	}
	defer rows.Close()
	var out []cortex.Scored
	for rows.Next() {
		var sc cortex.Scored
		var r float64
		if err := rows.Scan(&sc.Collection, &sc.ID, &r); err != nil {
			return nil, fmt.Errorf("keyword search: %w", err)
		}
		sc.Score = -r
		out = append(out, sc)
	}
	if err := rows.Err(); err != nil {
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
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM documents WHERE ?1 = '' OR collection = ?1`, collection).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count %s: %w", collection, err)
	}
	return n, nil
}

// stopwords carry no meaning for search; dropping them keeps a tired
// operator's "why is my pod not starting" from matching every document.
var stopwords = map[string]bool{}

func init() {
	for _, w := range strings.Fields(`a an and are as at be been but by can could did do does doing for from had has have how i
		if in into is it its it's just me my no not of on or our so some than that the their them then there these they
		this to was we were what when where which while who why will with would you your again keep keeps still
		anyone any all also im pls please help`) {
		stopwords[w] = true
	}
}

// QueryWords splits a question into distinct lower-case runs of letters and
// digits, without stopwords unless nothing else is left.
func QueryWords(q string) []string {
	seen := map[string]bool{}
	var words, stops []string
	for _, w := range strings.FieldsFunc(strings.ToLower(q), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	}) {
		if len(w) > 200 || seen[w] {
			continue
		}
		seen[w] = true
		if stopwords[w] {
			stops = append(stops, w)
			continue
		}
		words = append(words, w)
		if len(words) == maxQueryWords {
			break
		}
	}
	if len(words) == 0 {
		words = stops[:min(len(stops), maxQueryWords)]
	}
	return words
}
