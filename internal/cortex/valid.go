package cortex

import (
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// MaxKeyBytes caps a collection name, document id or graph id.
const MaxKeyBytes = 512

// CheckDocument refuses a document a store cannot hold as it is, naming the
// field that is wrong. Every store checks with it, so all refuse alike.
func CheckDocument(d Document) error {
	if err := CheckKey("collection", d.Collection); err != nil {
		return err
	}
	if err := CheckKey("id", d.ID); err != nil {
		return err
	}
	if err := checkCluster(d.Cluster); err != nil {
		return err
	}
	if err := CheckTime("created_at", d.CreatedAt); err != nil {
		return err
	}
	if err := CheckTime("updated_at", d.UpdatedAt); err != nil {
		return err
	}
	if err := CheckText("text", d.Text); err != nil {
		return err
	}
	for k, v := range d.Metadata {
		if err := CheckText("metadata key", k); err != nil {
			return err
		}
		if err := CheckText("metadata "+k, v); err != nil {
			return err
		}
	}
	return nil
}

// CheckKey refuses an empty or oversized key, or one that is not text.
func CheckKey(what, v string) error {
	if v == "" {
		return fmt.Errorf("%s is empty", what)
	}
	if len(v) > MaxKeyBytes {
		return fmt.Errorf("%s is longer than %d bytes", what, MaxKeyBytes)
	}
	return CheckText(what, v)
}

// checkCluster refuses a cluster name (empty means none) that is not text or
// longer than a report, which names it as a key, accepts.
func checkCluster(v string) error {
	if len(v) > MaxKeyBytes {
		return fmt.Errorf("cluster is longer than %d bytes", MaxKeyBytes)
	}
	return CheckText("cluster", v)
}

// The times every store can hold: SQLite keeps int64 nanoseconds since
// 1970, which end in 1677 and 2262.
var (
	minTime = time.Unix(0, math.MinInt64).UTC()
	maxTime = time.Unix(0, math.MaxInt64).UTC()
)

// CheckTime refuses a time a store cannot hold (it would come back as
// another); the zero time means "not given" and passes.
func CheckTime(what string, t time.Time) error {
	if t.IsZero() || !t.Before(minTime) && !t.After(maxTime) {
		return nil
	}
	return fmt.Errorf("%s %s is out of range (years %d to %d)", what, t.UTC().Format(time.RFC3339), minTime.Year()+1, maxTime.Year()-1)
}

// CheckText refuses what would not round-trip as text in SQLite or
// PostgreSQL (text and jsonb hold no NUL), so the caller learns which field
// is wrong instead of getting a driver error.
func CheckText(what, v string) error {
	if !utf8.ValidString(v) {
		return fmt.Errorf("%s is not valid UTF-8", what)
	}
	if strings.IndexByte(v, 0) >= 0 {
		return fmt.Errorf("%s contains a NUL byte", what)
	}
	return nil
}

// CheckKnownError gives e an id (a new UUID) when it has none and refuses
// it when a field cannot be stored.
func CheckKnownError(e KnownError) (KnownError, error) {
	if e.ID == "" {
		e.ID = uuid.NewString()
	}
	if err := CheckKey("known error id", e.ID); err != nil {
		return KnownError{}, err
	}
	if e.Pattern == "" {
		return KnownError{}, fmt.Errorf("known error %s: pattern is empty", e.ID)
	}
	for what, v := range map[string]string{"pattern": e.Pattern, "summary": e.Summary} {
		if err := CheckText(what, v); err != nil {
			return KnownError{}, fmt.Errorf("known error %s: %w", e.ID, err)
		}
	}
	if err := checkCluster(e.Cluster); err != nil {
		return KnownError{}, fmt.Errorf("known error %s: %w", e.ID, err)
	}
	if err := CheckTime("created_at", e.CreatedAt); err != nil {
		return KnownError{}, fmt.Errorf("known error %s: %w", e.ID, err)
	}
	for _, inc := range e.Incidents {
		if err := CheckKey("incident", inc); err != nil {
			return KnownError{}, fmt.Errorf("known error %s: %w", e.ID, err)
		}
	}
	return e, nil
}

// CheckSolution gives s an id (a new UUID) when it has none and refuses it
// when a field cannot be stored.
func CheckSolution(s Solution) (Solution, error) {
	if s.ID == "" {
		s.ID = uuid.NewString()
	}
	if err := CheckKey("solution id", s.ID); err != nil {
		return Solution{}, err
	}
	if s.Description == "" {
		return Solution{}, fmt.Errorf("solution %s: description is empty", s.ID)
	}
	if err := CheckText("description", s.Description); err != nil {
		return Solution{}, fmt.Errorf("solution %s: %w", s.ID, err)
	}
	for _, eid := range s.ErrorIDs {
		if err := CheckKey("error id", eid); err != nil {
			return Solution{}, fmt.Errorf("solution %s: %w", s.ID, err)
		}
	}
	for what, t := range map[string]time.Time{"created_at": s.CreatedAt, "updated_at": s.UpdatedAt} {
		if err := CheckTime(what, t); err != nil {
			return Solution{}, fmt.Errorf("solution %s: %w", s.ID, err)
		}
	}
	return s, nil
}
