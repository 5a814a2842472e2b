package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/cluster-shepherd/shepherd/internal/cortex/lexical"
)

// The keyword index is a contentless FTS5 table fed with text stemmed in Go
// (lexical.Stem, camelCase parts), so that the same stems can be looked up
// in its vocabulary: a query term found in more than half the documents is
// dropped (FTS5's bm25 gives it an IDF of ~0 anyway) and very common terms
// beyond a budget of matching rows are dropped too, which keeps bm25() from
// scoring most of a 100k-document table for "pod failed". A second column
// holds collection and cluster tags so filters are applied inside FTS5.
const ftsSchema = `
CREATE VIRTUAL TABLE IF NOT EXISTS documents_fts USING fts5(
	body, tags, content='', contentless_delete=1, tokenize='unicode61 remove_diacritics 2');
CREATE VIRTUAL TABLE IF NOT EXISTS documents_vocab USING fts5vocab(documents_fts, 'row');
`

// ftsVersion is stored in PRAGMA user_version; an older file is reindexed.
const ftsVersion = 2

// matchBudget is how many matching rows bm25() may score for one query
// before the commonest remaining terms are dropped.
// At 100k documents, 20,000 gave /query p99 22 ms and the same recall@5 as
// 10,000 (0.867, BenchmarkQuality100k) at p99 15 ms; 5,000 lost recall
// (0.844).
const matchBudget = 10000

func (s *Store) migrateFTS(ctx context.Context) error {
	var v int
	if err := s.db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil {
		return err
	}
	if v >= ftsVersion {
		_, err := s.db.ExecContext(ctx, ftsSchema)
		return err
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		for _, q := range []string{
			`DROP TRIGGER IF EXISTS documents_ai`, `DROP TRIGGER IF EXISTS documents_ad`, `DROP TRIGGER IF EXISTS documents_au`,
			`DROP TABLE IF EXISTS documents_vocab`, `DROP TABLE IF EXISTS documents_fts`, ftsSchema,
		} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return err
			}
		}
		rows, err := tx.QueryContext(ctx, `SELECT rid, collection, cluster, body FROM documents`)
		if err != nil {
			return err
		}
		type row struct {
			rid              int64
			coll, clus, body string
		}
		var all []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.rid, &r.coll, &r.clus, &r.body); err != nil {
				rows.Close()
				return err
			}
			all = append(all, r)
		}
		rows.Close()
		for _, r := range all {
			if _, err := tx.ExecContext(ctx, `INSERT INTO documents_fts(rowid, body, tags) VALUES (?, ?, ?)`, r.rid, ftsBody(r.body), tags(r.coll, r.clus)); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, ftsVersion))
		return err
	})
}

// ftsBody is the text as the index sees it: stems and camelCase parts.
func ftsBody(text string) string {
	var b strings.Builder
	for _, t := range lexical.Tokens(text) {
		b.WriteString(t.Stem)
		b.WriteByte(' ')
		for _, p := range t.Parts {
			b.WriteString(p)
			b.WriteByte(' ')
		}
	}
	return b.String()
}

func tag(prefix, v string) string {
	h := fnv.New64a()
	h.Write([]byte(v))
	return fmt.Sprintf("%s%016x", prefix, h.Sum64())
}

func tags(collection, cluster string) string {
	return tag("c", collection) + " " + tag("k", cluster)
}

// queryTerms stems a question's words the way ftsBody stems documents.
func queryTerms(query string) []string {
	seen := map[string]bool{}
	var out []string
	for _, w := range QueryWords(query) {
		for _, t := range lexical.Tokens(w) {
			if !seen[t.Stem] && len(out) < maxQueryWords {
				seen[t.Stem] = true
				out = append(out, t.Stem)
			}
		}
	}
	if len(out) == 0 {
		// All stopwords: search them as they are.
		for _, w := range QueryWords(query) {
			if !seen[w] {
				seen[w] = true
				out = append(out, w)
			}
		}
	}
	return out
}

// selectTerms drops terms that match too much to discriminate, commonest
// first, always keeping the rarest two that match anything.
func (s *Store) selectTerms(ctx context.Context, terms []string) ([]string, error) {
	if len(terms) == 0 {
		return nil, nil
	}
	var n int64
	if err := s.db.QueryRowContext(ctx, `SELECT coalesce(max(rid), 0) FROM documents`).Scan(&n); err != nil {
		return nil, err
	}
	args := make([]any, len(terms))
	for i, t := range terms {
		args[i] = t
	}
	rows, err := s.db.QueryContext(ctx, `SELECT term, doc FROM documents_vocab WHERE term IN (?`+strings.Repeat(`, ?`, len(terms)-1)+`) ORDER BY doc, term`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	type tdf struct {
		term string
		df   int64
	}
	var found []tdf
	for rows.Next() {
		var t tdf
		if err := rows.Scan(&t.term, &t.df); err != nil {
			return nil, err
		}
		found = append(found, t)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var out []string
	var total int64
	for i, t := range found {
		if i >= 2 && (2*t.df > n || total+t.df > matchBudget) {
			break
		}
		out = append(out, t.term)
		total += t.df
	}
	return out, nil
}

func ftsQuote(t string) string { return `"` + strings.ReplaceAll(t, `"`, `""`) + `"` }
