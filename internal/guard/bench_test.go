package guard_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/cluster-shepherd/shepherd/internal/guard"
	"github.com/cluster-shepherd/shepherd/internal/guard/storetest"
)

// BenchmarkWriteCycle measures assess (auto) → authorize → finish on the
// file store with a backlog of done tasks, i.e. the gate's overhead per write.
func BenchmarkWriteCycle(b *testing.B) {
	for _, backlog := range []int{0, 1000} {
		b.Run(fmt.Sprintf("backlog=%d", backlog), func(b *testing.B) {
			ctx := context.Background()
			dir := b.TempDir()
			store, err := guard.OpenFileStore(filepath.Join(dir, "tasks"))
			if err != nil {
				b.Fatal(err)
			}
			defer store.Close()
			al, err := guard.OpenAuditLog(filepath.Join(dir, "audit.jsonl"))
			if err != nil {
				b.Fatal(err)
			}
			defer al.Close()
			g, err := guard.New(guard.Options{Memory: storetest.NewMemory(guard.Auto), Store: store, Audit: al,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				b.Fatal(err)
			}
			cycle := func(i int) {
				args := map[string]any{"namespace": "shop", "name": fmt.Sprintf("web-%d", i), "kind": "Deployment"}
				if _, err := g.Assess(ctx, guard.AssessInput{Action: "restart", Tool: "restart_workload", Args: args}); err != nil {
					b.Fatal(err)
				}
				auth, err := g.Authorize(ctx, "restart_workload", args)
				if err != nil {
					b.Fatal(err)
				}
				if err := g.Finish(ctx, auth, "ok", nil); err != nil {
					b.Fatal(err)
				}
			}
			for i := range backlog {
				cycle(-1 - i)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				cycle(i)
			}
		})
	}
}
