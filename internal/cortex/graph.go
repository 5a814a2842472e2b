package cortex

import (
	"context"
	"errors"
	"strings"
)

// wrapGraph maps a store's error onto what the caller must do about it.
func wrapGraph(what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrNotFound) || strings.Contains(err.Error(), "not found") {
		if errors.Is(err, ErrNotFound) {
			return err
		}
		return kinded{ErrNotFound, err.Error()}
	}
	if isInputError(err) {
		return invalid("%s: %s", what, err)
	}
	return unavailable("%s: %w", what, err)
}

// isInputError recognises the stores' validation messages (they are plain
// errors so that each backend needs no shared vocabulary).
func isInputError(err error) bool {
	m := err.Error()
	for _, s := range []string{"is empty", "longer than", "not valid UTF-8", "NUL byte", "must not be negative", "is out of range"} {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

// PutKnownError creates or updates a recurring error pattern.
func (s *Service) PutKnownError(ctx context.Context, e KnownError) (KnownError, error) {
	if strings.TrimSpace(e.Pattern) == "" {
		return KnownError{}, invalid("known error: pattern is empty")
	}
	if n := len(e.Pattern) + len(e.Summary); n > s.opts.MaxDocumentBytes {
		return KnownError{}, invalid("known error: pattern and summary are %d bytes, the limit is %d", n, s.opts.MaxDocumentBytes)
	}
	out, err := s.graph.PutKnownError(ctx, e)
	return out, wrapGraph("put known error", err)
}

// ListKnownErrors returns every known error.
func (s *Service) ListKnownErrors(ctx context.Context) ([]KnownError, error) {
	out, err := s.graph.ListKnownErrors(ctx)
	if out == nil {
		out = []KnownError{}
	}
	return out, wrapGraph("list known errors", err)
}

// PutSolution creates or updates a solution, linked to its ErrorIDs.
func (s *Service) PutSolution(ctx context.Context, sol Solution) (Solution, error) {
	if strings.TrimSpace(sol.Description) == "" {
		return Solution{}, invalid("solution: description is empty")
	}
	if n := len(sol.Description); n > s.opts.MaxDocumentBytes {
		return Solution{}, invalid("solution: description is %d bytes, the limit is %d", n, s.opts.MaxDocumentBytes)
	}
	out, err := s.graph.PutSolution(ctx, sol)
	return out, wrapGraph("put solution", err)
}

// LinkSolution records that a solution was tried for a known error.
func (s *Service) LinkSolution(ctx context.Context, errorID, solutionID string) error {
	if err := checkIDs("known error id", errorID, "solution id", solutionID); err != nil {
		return err
	}
	return wrapGraph("link", s.graph.Link(ctx, errorID, solutionID))
}

// VerifySolution marks whether a solution is known to work; verified
// solutions lead the merged context and lower the risk of matching actions.
func (s *Service) VerifySolution(ctx context.Context, solutionID string, verified bool) error {
	if err := checkIDs("solution id", solutionID); err != nil {
		return err
	}
	return wrapGraph("verify solution", s.graph.SetVerified(ctx, solutionID, verified))
}

// SolutionsFor lists the solutions of a known error, verified first.
func (s *Service) SolutionsFor(ctx context.Context, errorID string) ([]Solution, error) {
	if err := checkIDs("known error id", errorID); err != nil {
		return nil, err
	}
	out, err := s.graph.SolutionsFor(ctx, errorID)
	if out == nil {
		out = []Solution{}
	}
	return out, wrapGraph("solutions", err)
}

// AddIncident records a document where a known error showed.
func (s *Service) AddIncident(ctx context.Context, errorID, documentID string) error {
	if err := checkIDs("known error id", errorID); err != nil {
		return err
	}
	return wrapGraph("add incident", s.graph.AddIncident(ctx, errorID, documentID))
}

// checkIDs refuses ids (what, id pairs, from a request's path) that no known
// error or solution can have, instead of looking them up.
func checkIDs(whatID ...string) error {
	for i := 0; i+1 < len(whatID); i += 2 {
		if err := CheckKey(whatID[i], whatID[i+1]); err != nil {
			return invalid("%s", err)
		}
	}
	return nil
}
