// Package sqlitetest gives the conformance suites fresh embedded stores, for
// the tests of packages other than sqlite (whose own tests cannot import it:
// it imports sqlite).
package sqlitetest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
	"github.com/cluster-shepherd/shepherd/internal/cortex/sqlite"
)

// Stores opens an empty SQLite store in t.TempDir(), closed when t ends, as
// all three stores; it is a cortextest.NewStores.
func Stores(t *testing.T) (cortex.DocumentStore, cortex.VectorIndex, cortex.GraphStore) {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "cortex.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, s, s
}
