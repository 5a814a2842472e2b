package pgqueue_test

import (
	"context"
	"strings"
	"testing"

	"github.com/cluster-shepherd/shepherd/internal/guard"
	"github.com/cluster-shepherd/shepherd/internal/guard/pgqueue"
	"github.com/cluster-shepherd/shepherd/internal/guard/storetest"
	"github.com/cluster-shepherd/shepherd/internal/pgtest"
)

var srv *pgtest.Server

func TestMain(m *testing.M) { pgtest.Main(m, &srv) }

func backing(t *testing.T) func() guard.Store {
	dsn := srv.NewDatabase(t)
	return func() guard.Store {
		s, err := pgqueue.Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
}

func TestStore(t *testing.T) { storetest.RunStore(t, backing) }

func TestGate(t *testing.T) { storetest.RunGate(t, backing) }

func TestOpenHidesPassword(t *testing.T) {
	_, err := pgqueue.Open(context.Background(), "postgres://u:s3cr3t-pw@127.0.0.1:1/db?sslmode=bogus")
	if err == nil {
		t.Fatal("want an error")
	}
	if got := err.Error(); strings.Contains(got, "s3cr3t-pw") {
		t.Fatalf("error leaks the password: %s", got)
	}
}
