package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
)

const knownErrorCols = `e.id, e.pattern, e.summary, e.cluster, e.created_at,
	ARRAY(SELECT i.document_id FROM cortex_incidents i WHERE i.error_id = e.id ORDER BY i.added_at, i.document_id)`

const solutionCols = `s.id, s.description, s.verified, s.created_at, s.updated_at,
	ARRAY(SELECT l.error_id FROM cortex_error_solutions l WHERE l.solution_id = s.id ORDER BY l.error_id)`

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
	var out cortex.KnownError
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO cortex_known_errors (id, pattern, summary, cluster, created_at)
			VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (id) DO UPDATE SET pattern = EXCLUDED.pattern, summary = EXCLUDED.summary,
				cluster = EXCLUDED.cluster,
				created_at = CASE WHEN $6 THEN cortex_known_errors.created_at ELSE EXCLUDED.created_at END`,
			e.ID, e.Pattern, e.Summary, e.Cluster, stamp(e.CreatedAt), e.CreatedAt.IsZero()); err != nil {
			return err
		}
		for _, inc := range e.Incidents {
			if err := addIncident(ctx, tx, e.ID, inc); err != nil {
				return err
			}
		}
		var err error
		out, err = scanKnownError(tx.QueryRow(ctx, `SELECT `+knownErrorCols+` FROM cortex_known_errors e WHERE e.id = $1`, e.ID))
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
	rows, err := s.pool.Query(ctx, `SELECT `+knownErrorCols+` FROM cortex_known_errors e ORDER BY e.created_at, e.id`)
	if err != nil {
		return nil, fmt.Errorf("list known errors: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (cortex.KnownError, error) { return scanKnownError(r) })
	if err != nil {
		return nil, fmt.Errorf("list known errors: %w", err)
	}
	return out, nil
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
	updated := stamp(sol.UpdatedAt)
	var out cortex.Solution
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO cortex_solutions (id, description, verified, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (id) DO UPDATE SET description = EXCLUDED.description, verified = EXCLUDED.verified,
				created_at = CASE WHEN $6 THEN cortex_solutions.created_at ELSE EXCLUDED.created_at END,
				updated_at = EXCLUDED.updated_at`,
			sol.ID, sol.Description, sol.Verified, stamp(sol.CreatedAt), updated, sol.CreatedAt.IsZero()); err != nil {
			return err
		}
		for _, eid := range sol.ErrorIDs {
			if err := link(ctx, tx, eid, sol.ID); err != nil {
				return err
			}
		}
		var err error
		out, err = scanSolution(tx.QueryRow(ctx, `SELECT `+solutionCols+` FROM cortex_solutions s WHERE s.id = $1`, sol.ID))
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
	if err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return link(ctx, tx, errorID, solutionID) }); err != nil {
		return fmt.Errorf("link error %s to solution %s: %w", errorID, solutionID, err)
	}
	return nil
}

// SetVerified marks whether a solution is known to work.
func (s *Store) SetVerified(ctx context.Context, solutionID string, verified bool) error {
	if err := s.check(); err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `UPDATE cortex_solutions SET verified = $2, updated_at = $3 WHERE id = $1`, solutionID, verified, now())
	if err != nil {
		return fmt.Errorf("verify solution %s: %w", solutionID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("verify solution %s: %w", solutionID, cortex.ErrNotFound)
	}
	return nil
}

// SolutionsFor returns the solutions linked to an error, verified ones first,
// then the most recently changed; an unknown error has none.
func (s *Store) SolutionsFor(ctx context.Context, errorID string) ([]cortex.Solution, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+solutionCols+`
		FROM cortex_solutions s JOIN cortex_error_solutions l ON l.solution_id = s.id
		WHERE l.error_id = $1
		ORDER BY s.verified DESC, s.updated_at DESC, s.id`, errorID)
	if err != nil {
		return nil, fmt.Errorf("solutions for %s: %w", errorID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (cortex.Solution, error) { return scanSolution(r) })
	if err != nil {
		return nil, fmt.Errorf("solutions for %s: %w", errorID, err)
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
	if err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return addIncident(ctx, tx, errorID, documentID) }); err != nil {
		return fmt.Errorf("add incident %s to %s: %w", documentID, errorID, err)
	}
	return nil
}

func link(ctx context.Context, tx pgx.Tx, errorID, solutionID string) error {
	if err := exists(ctx, tx, "cortex_known_errors", "known error", errorID); err != nil {
		return err
	}
	if err := exists(ctx, tx, "cortex_solutions", "solution", solutionID); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `INSERT INTO cortex_error_solutions (error_id, solution_id) VALUES ($1, $2)
		ON CONFLICT DO NOTHING`, errorID, solutionID)
	return err
}

func addIncident(ctx context.Context, tx pgx.Tx, errorID, documentID string) error {
	if err := exists(ctx, tx, "cortex_known_errors", "known error", errorID); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `INSERT INTO cortex_incidents (error_id, document_id, added_at) VALUES ($1, $2, $3)
		ON CONFLICT DO NOTHING`, errorID, documentID, now())
	return err
}

// exists turns a missing row into cortex.ErrNotFound before a foreign key would
// turn it into an opaque constraint violation. table is a constant.
func exists(ctx context.Context, tx pgx.Tx, table, what, id string) error {
	var ok bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+table+` WHERE id = $1)`, id).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%s %q: %w", what, id, cortex.ErrNotFound)
	}
	return nil
}

func scanKnownError(r pgx.Row) (cortex.KnownError, error) {
	var e cortex.KnownError
	err := r.Scan(&e.ID, &e.Pattern, &e.Summary, &e.Cluster, &e.CreatedAt, &e.Incidents)
	if errors.Is(err, pgx.ErrNoRows) {
		return e, cortex.ErrNotFound
	}
	e.CreatedAt = e.CreatedAt.UTC()
	if len(e.Incidents) == 0 {
		e.Incidents = nil
	}
	return e, err
}

func scanSolution(r pgx.Row) (cortex.Solution, error) {
	var s cortex.Solution
	err := r.Scan(&s.ID, &s.Description, &s.Verified, &s.CreatedAt, &s.UpdatedAt, &s.ErrorIDs)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, cortex.ErrNotFound
	}
	s.CreatedAt, s.UpdatedAt = s.CreatedAt.UTC(), s.UpdatedAt.UTC()
	if len(s.ErrorIDs) == 0 {
		s.ErrorIDs = nil
	}
	return s, err
}
