package cortex

import (
	"fmt"
	"strings"
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
	if err := CheckText("cluster", d.Cluster); err != nil {
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
	for what, v := range map[string]string{"pattern": e.Pattern, "summary": e.Summary, "cluster": e.Cluster} {
		if err := CheckText(what, v); err != nil {
			return KnownError{}, fmt.Errorf("known error %s: %w", e.ID, err)
		}
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
	return s, nil
}
