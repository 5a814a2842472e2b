package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
)

// PutKnownError creates or updates a known error (a missing ID gets a new
// UUID); its incidents are added to those already recorded, never replaced.
func (s *Store) PutKnownError(ctx context.Context, e cortex.KnownError) (cortex.KnownError, error) {
	if err := s.check(); err != nil {
		return cortex.KnownError{}, err
	}
	e, err := cortex.CheckKnownError(e)
	if err != nil {
		return cortex.KnownError{}, err
	}
	created := e.CreatedAt
	if created.IsZero() {
		created = now()
	}
	var out cortex.KnownError
	err = s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO known_errors (id, pattern, summary, cluster, created_at)
			VALUES (?1, ?2, ?3, ?4, ?5)
			ON CONFLICT (id) DO UPDATE SET pattern = excluded.pattern, summary = excluded.summary,
				cluster = excluded.cluster,
				created_at = CASE WHEN ?6 THEN known_errors.created_at ELSE excluded.created_at END`,
			e.ID, e.Pattern, e.Summary, e.Cluster, toNanos(created), e.CreatedAt.IsZero()); err != nil {
			return err
		}
		for _, inc := range e.Incidents {
			if err := addIncident(ctx, tx, e.ID, inc); err != nil {
				return err
			}
		}
		var err error
		out, err = getKnownError(ctx, tx, e.ID)
		return err
	})
	if err != nil {
		return cortex.KnownError{}, fmt.Errorf("put known error %s: %w", e.ID, err)
	}
	return out, nil
}

// ListKnownErrors returns every known error, oldest first.
func (s *Store) ListKnownErrors(ctx context.Context) ([]cortex.KnownError, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, pattern, summary, cluster, created_at FROM known_errors ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list known errors: %w", err)
	}
	var out []cortex.KnownError
	for rows.Next() {
		var e cortex.KnownError
		var created int64
		if err := rows.Scan(&e.ID, &e.Pattern, &e.Summary, &e.Cluster, &created); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list known errors: %w", err)
		}
		e.CreatedAt = fromNanos(created)
		out = append(out, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list known errors: %w", err)
	}
	inc, err := s.db.QueryContext(ctx, `SELECT error_id, document_id FROM incidents ORDER BY added_at, document_id`)
	if err != nil {
		return nil, fmt.Errorf("list known errors: incidents: %w", err)
	}
	defer inc.Close()
	byID := map[string][]string{}
	for inc.Next() {
		var eid, doc string
		if err := inc.Scan(&eid, &doc); err != nil {
			return nil, fmt.Errorf("list known errors: incidents: %w", err)
		}
		byID[eid] = append(byID[eid], doc)
	}
	for i := range out {
		out[i].Incidents = byID[out[i].ID]
	}
	return out, inc.Err()
}

// PutSolution creates or updates a solution (a missing ID gets a new UUID)
// and links it to each of its ErrorIDs, which must exist.
func (s *Store) PutSolution(ctx context.Context, sol cortex.Solution) (cortex.Solution, error) {
	if err := s.check(); err != nil {
		return cortex.Solution{}, err
	}
	sol, err := cortex.CheckSolution(sol)
	if err != nil {
		return cortex.Solution{}, err
	}
	t := now()
	created, updated := sol.CreatedAt, sol.UpdatedAt
	if created.IsZero() {
		created = t
	}
	if updated.IsZero() {
		updated = t
	}
	var out cortex.Solution
	err = s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO solutions (id, description, verified, created_at, updated_at)
			VALUES (?1, ?2, ?3, ?4, ?5)
			ON CONFLICT (id) DO UPDATE SET description = excluded.description, verified = excluded.verified,
				created_at = CASE WHEN ?6 THEN solutions.created_at ELSE excluded.created_at END,
				updated_at = excluded.updated_at`,
			sol.ID, sol.Description, sol.Verified, toNanos(created), toNanos(updated), sol.CreatedAt.IsZero()); err != nil {
			return err
		}
		for _, eid := range sol.ErrorIDs {
			if err := link(ctx, tx, eid, sol.ID); err != nil {
				return err
			}
		}
		var err error
		out, err = getSolution(ctx, tx, sol.ID)
		return err
	})
	if err != nil {
		return cortex.Solution{}, fmt.Errorf("put solution %s: %w", sol.ID, err)
	}
	return out, nil
}

// Link records that a solution was tried for an error; linking twice is a
// no-op.
func (s *Store) Link(ctx context.Context, errorID, solutionID string) error {
	if err := s.check(); err != nil {
		return err
	}
	if err := s.write(ctx, func(tx *sql.Tx) error { return link(ctx, tx, errorID, solutionID) }); err != nil {
		return fmt.Errorf("link error %s to solution %s: %w", errorID, solutionID, err)
	}
	return nil
}

// SetVerified marks whether a solution is known to work.
func (s *Store) SetVerified(ctx context.Context, solutionID string, verified bool) error {
	if err := s.check(); err != nil {
		return err
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE solutions SET verified = ?, updated_at = ? WHERE id = ?`, verified, toNanos(now()), solutionID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return cortex.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("verify solution %s: %w", solutionID, err)
	}
	return nil
}

// SolutionsFor returns the solutions linked to an error, verified ones first,
// then the most recently changed; an unknown error has none.
func (s *Store) SolutionsFor(ctx context.Context, errorID string) ([]cortex.Solution, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT s.id FROM solutions s JOIN error_solutions l ON l.solution_id = s.id
		WHERE l.error_id = ? ORDER BY s.verified DESC, s.updated_at DESC, s.id`, errorID)
	if err != nil {
		return nil, fmt.Errorf("solutions for %s: %w", errorID, err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("solutions for %s: %w", errorID, err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	var out []cortex.Solution
	for _, id := range ids {
		sol, err := getSolution(ctx, s.db, id)
		if err != nil {
			return nil, fmt.Errorf("solutions for %s: %w", errorID, err)
		}
		out = append(out, sol)
	}
	return out, nil
}

// AddIncident records a document where a known error showed; adding the same
// one twice is a no-op.
func (s *Store) AddIncident(ctx context.Context, errorID, documentID string) error {
	if err := s.check(); err != nil {
		return err
	}
	if err := cortex.CheckKey("incident", documentID); err != nil {
		return fmt.Errorf("add incident to %s: %w", errorID, err)
	}
	if err := s.write(ctx, func(tx *sql.Tx) error { return addIncident(ctx, tx, errorID, documentID) }); err != nil {
		return fmt.Errorf("add incident %s to %s: %w", documentID, errorID, err)
	}
	return nil
}

type queryer interface {
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

func link(ctx context.Context, tx *sql.Tx, errorID, solutionID string) error {
	if err := exists(ctx, tx, "known_errors", "known error", errorID); err != nil {
		return err
	}
	if err := exists(ctx, tx, "solutions", "solution", solutionID); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO error_solutions (error_id, solution_id) VALUES (?, ?) ON CONFLICT DO NOTHING`, errorID, solutionID)
	return err
}

func addIncident(ctx context.Context, tx *sql.Tx, errorID, documentID string) error {
	if err := exists(ctx, tx, "known_errors", "known error", errorID); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO incidents (error_id, document_id, added_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
		errorID, documentID, toNanos(now()))
	return err
}

// exists turns a missing row into cortex.ErrNotFound; table is a constant.
func exists(ctx context.Context, q queryer, table, what, id string) error {
	var ok bool
	if err := q.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM `+table+` WHERE id = ?)`, id).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%s %q: %w", what, id, cortex.ErrNotFound)
	}
	return nil
}

func getKnownError(ctx context.Context, q queryer, id string) (cortex.KnownError, error) {
	e := cortex.KnownError{ID: id}
	var created int64
	err := q.QueryRowContext(ctx, `SELECT pattern, summary, cluster, created_at FROM known_errors WHERE id = ?`, id).
		Scan(&e.Pattern, &e.Summary, &e.Cluster, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return e, fmt.Errorf("known error %q: %w", id, cortex.ErrNotFound)
	}
	if err != nil {
		return e, err
	}
	e.CreatedAt = fromNanos(created)
	e.Incidents, err = strings1(ctx, q, `SELECT document_id FROM incidents WHERE error_id = ? ORDER BY added_at, document_id`, id)
	return e, err
}

func getSolution(ctx context.Context, q queryer, id string) (cortex.Solution, error) {
	sol := cortex.Solution{ID: id}
	var created, updated int64
	err := q.QueryRowContext(ctx, `SELECT description, verified, created_at, updated_at FROM solutions WHERE id = ?`, id).
		Scan(&sol.Description, &sol.Verified, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return sol, fmt.Errorf("solution %q: %w", id, cortex.ErrNotFound)
	}
	if err != nil {
		return sol, err
	}
	sol.CreatedAt, sol.UpdatedAt = fromNanos(created), fromNanos(updated)
	sol.ErrorIDs, err = strings1(ctx, q, `SELECT error_id FROM error_solutions WHERE solution_id = ? ORDER BY error_id`, id)
	return sol, err
}

// strings1 collects a one-column query; nil when there are no rows.
func strings1(ctx context.Context, q queryer, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
