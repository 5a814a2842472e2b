package qdrant

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	qc "github.com/qdrant/go-client/qdrant"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
	"github.com/cluster-shepherd/shepherd/internal/cortex/qdrant/qdranttest"
)

func ids(sc []cortex.Scored) string {
	out := make([]string, len(sc))
	for i, s := range sc {
		out[i] = s.Collection + "/" + s.ID
	}
	return strings.Join(out, ",")
}

// target is a Qdrant to test against: the stand-in, or a real one.
type target struct {
	addr   string
	apiKey string
	// raw talks to the same server directly, to set up and inspect state.
	raw *qc.Client
}

func standIn(t *testing.T) target {
	srv := qdranttest.New(t)
	return target{addr: srv.Addr(), raw: rawClient(t, srv.Addr(), "")}
}

func rawClient(t *testing.T, addr, key string) *qc.Client {
	t.Helper()
	host, port, useTLS, err := parseAddr(addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := qc.NewClient(&qc.Config{Host: host, Port: port, APIKey: key, UseTLS: useTLS, SkipCompatibilityCheck: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// openIndex opens an Index on a collection unique to the test and drops the
// collection afterwards.
func (tg target) openIndex(t *testing.T, opts Options) *Index {
	t.Helper()
	if opts.Collection == "" {
		opts.Collection = "cortex_test_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
	}
	opts.APIKey = tg.apiKey
	ix, err := Open(context.Background(), tg.addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ix.Close()
		_ = tg.raw.DeleteCollection(context.Background(), opts.Collection)
	})
	return ix
}

func TestAgainstStandIn(t *testing.T) { behaviour(t, standIn) }

// TestAgainstRealQdrant runs the same checks against a real Qdrant when
// QDRANT_URL names its gRPC endpoint (e.g. http://127.0.0.1:6334).
func TestAgainstRealQdrant(t *testing.T) {
	url := os.Getenv("QDRANT_URL")
	if url == "" {
		t.Skip("QDRANT_URL is not set; set it to a Qdrant gRPC endpoint (and QDRANT_API_KEY if needed) to run against a real server")
	}
	key := os.Getenv("QDRANT_API_KEY")
	behaviour(t, func(t *testing.T) target { return target{addr: url, apiKey: key, raw: rawClient(t, url, key)} })
}

func behaviour(t *testing.T, newTarget func(*testing.T) target) {
	ctx := context.Background()

	t.Run("search before any upsert finds nothing", func(t *testing.T) {
		ix := newTarget(t).openIndex(t, Options{})
		got, err := ix.Search(ctx, []float32{1, 0, 0}, cortex.Filter{}, 5)
		if err != nil || len(got) != 0 {
			t.Fatalf("%v %v", got, err)
		}
	})

	t.Run("first upsert creates a cosine collection of its size", func(t *testing.T) {
		tg := newTarget(t)
		ix := tg.openIndex(t, Options{})
		if err := ix.UpsertVectors(ctx, []cortex.VectorItem{{Collection: "a", ID: "x", Vector: []float32{1, 2, 3, 4}}}); err != nil {
			t.Fatal(err)
		}
		info, err := tg.raw.GetCollectionInfo(ctx, ix.collection)
		if err != nil {
			t.Fatal(err)
		}
		p := info.GetConfig().GetParams().GetVectorsConfig().GetParams()
		if p.GetSize() != 4 || p.GetDistance() != qc.Distance_Cosine {
			t.Fatalf("params %v", p)
		}
		for _, f := range []string{keyCollection, keyCluster} {
			if _, ok := info.GetPayloadSchema()[f]; !ok {
				t.Errorf("payload field %s not indexed: %v", f, info.GetPayloadSchema())
			}
		}
	})

	t.Run("upsert is idempotent by collection and id", func(t *testing.T) {
		tg := newTarget(t)
		ix := tg.openIndex(t, Options{})
		item := cortex.VectorItem{Collection: "a", ID: "x", Cluster: "prod", Vector: []float32{1, 0, 0}}
		for range 3 {
			if err := ix.UpsertVectors(ctx, []cortex.VectorItem{item, item}); err != nil {
				t.Fatal(err)
			}
		}
		item.Collection = "b"
		if err := ix.UpsertVectors(ctx, []cortex.VectorItem{item}); err != nil {
			t.Fatal(err)
		}
		n, err := tg.raw.Count(ctx, &qc.CountPoints{CollectionName: ix.collection, Exact: qc.PtrOf(true)})
		if err != nil || n != 2 {
			t.Fatalf("count %d %v", n, err)
		}
		pts, err := tg.raw.Get(ctx, &qc.GetPoints{CollectionName: ix.collection, Ids: []*qc.PointId{qc.NewIDUUID(PointID("a", "x"))}, WithPayload: qc.NewWithPayload(true)})
		if err == nil {
			if len(pts) != 1 || pts[0].GetPayload()[keyCluster].GetStringValue() != "prod" || pts[0].GetPayload()[keyID].GetStringValue() != "x" {
				t.Fatalf("point %v", pts)
			}
		} else if status.Code(err) != codes.Unimplemented {
			t.Fatal(err)
		}
	})

	t.Run("search ranks by cosine and filters", func(t *testing.T) {
		ix := newTarget(t).openIndex(t, Options{})
		err := ix.UpsertVectors(ctx, []cortex.VectorItem{
			{Collection: "a", ID: "x", Cluster: "prod", Vector: []float32{1, 0, 0}},
			{Collection: "a", ID: "y", Cluster: "prod", Vector: []float32{0, 2, 0}},
			{Collection: "b", ID: "z", Cluster: "dev", Vector: []float32{1, 1, 0}},
			{Collection: "b", ID: "w", Vector: []float32{-1, 0, 0}},
			{Collection: "c", ID: "v", Cluster: "prod", Vector: []float32{1, 0, 0.1}},
		})
		if err != nil {
			t.Fatal(err)
		}
		got, err := ix.Search(ctx, []float32{3, 0, 0}, cortex.Filter{}, 10)
		if err != nil {
			t.Fatal(err)
		}
		if ids(got) != "a/x,c/v,b/z,a/y,b/w" {
			t.Fatalf("order %s", ids(got))
		}
		want := []float64{1, 0.995, 0.7071, 0, -1}
		for i, g := range got {
			if math.Abs(g.Score-want[i]) > 1e-3 {
				t.Fatalf("score %d = %v, want %v", i, g.Score, want[i])
			}
		}
		if got, _ := ix.Search(ctx, []float32{1, 0, 0}, cortex.Filter{Collections: []string{"b", "c"}}, 2); ids(got) != "c/v,b/z" {
			t.Fatalf("collections filter: %s", ids(got))
		}
		if got, _ := ix.Search(ctx, []float32{1, 0, 0}, cortex.Filter{Cluster: "prod"}, 10); ids(got) != "a/x,c/v,a/y" {
			t.Fatalf("cluster filter: %s", ids(got))
		}
		if got, _ := ix.Search(ctx, []float32{1, 0, 0}, cortex.Filter{Collections: []string{"a"}, Cluster: "dev"}, 10); len(got) != 0 {
			t.Fatalf("both filters: %s", ids(got))
		}
		if got, err := ix.Search(ctx, []float32{1, 0, 0}, cortex.Filter{}, 0); err != nil || len(got) != 0 {
			t.Fatalf("k=0: %v %v", got, err)
		}
		// Re-upserting moves the point.
		if err := ix.UpsertVectors(ctx, []cortex.VectorItem{{Collection: "a", ID: "y", Cluster: "prod", Vector: []float32{3, 0, 0}}}); err != nil {
			t.Fatal(err)
		}
		if got, _ := ix.Search(ctx, []float32{1, 0, 0}, cortex.Filter{Collections: []string{"a"}}, 10); ids(got) != "a/x,a/y" && ids(got) != "a/y,a/x" {
			t.Fatalf("after re-upsert: %s", ids(got))
		}
	})

	t.Run("dimension mismatches are clear errors", func(t *testing.T) {
		ix := newTarget(t).openIndex(t, Options{})
		if err := ix.UpsertVectors(ctx, []cortex.VectorItem{{Collection: "a", ID: "x", Vector: []float32{1, 0, 0}}}); err != nil {
			t.Fatal(err)
		}
		err := ix.UpsertVectors(ctx, []cortex.VectorItem{{Collection: "a", ID: "y", Vector: []float32{1, 0}}})
		if err == nil || !strings.Contains(err.Error(), "2 dimensions") || !strings.Contains(err.Error(), "holds 3") {
			t.Fatalf("upsert: %v", err)
		}
		_, err = ix.Search(ctx, []float32{1, 0, 0, 0}, cortex.Filter{}, 3)
		if err == nil || !strings.Contains(err.Error(), "4 dimensions") {
			t.Fatalf("search: %v", err)
		}
	})

	t.Run("an existing collection is checked, not trusted", func(t *testing.T) {
		tg := newTarget(t)
		name := "cortex_test_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
		if err := tg.raw.CreateCollection(ctx, &qc.CreateCollection{CollectionName: name,
			VectorsConfig: qc.NewVectorsConfig(&qc.VectorParams{Size: 8, Distance: qc.Distance_Cosine})}); err != nil {
			t.Fatal(err)
		}
		ix := tg.openIndex(t, Options{Collection: name})
		err := ix.UpsertVectors(ctx, []cortex.VectorItem{{Collection: "a", ID: "x", Vector: []float32{1, 0, 0}}})
		if err == nil || !strings.Contains(err.Error(), "holds 8") {
			t.Fatalf("wrong size: %v", err)
		}

		dot := "cortex_test_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
		if err := tg.raw.CreateCollection(ctx, &qc.CreateCollection{CollectionName: dot,
			VectorsConfig: qc.NewVectorsConfig(&qc.VectorParams{Size: 3, Distance: qc.Distance_Dot})}); err != nil {
			t.Fatal(err)
		}
		ix2 := tg.openIndex(t, Options{Collection: dot})
		err = ix2.UpsertVectors(ctx, []cortex.VectorItem{{Collection: "a", ID: "x", Vector: []float32{1, 0, 0}}})
		if err == nil || !strings.Contains(err.Error(), "Cosine") {
			t.Fatalf("wrong distance: %v", err)
		}
	})

	t.Run("a collection deleted behind our back is recreated", func(t *testing.T) {
		tg := newTarget(t)
		ix := tg.openIndex(t, Options{})
		item := []cortex.VectorItem{{Collection: "a", ID: "x", Vector: []float32{1, 0, 0}}}
		if err := ix.UpsertVectors(ctx, item); err != nil {
			t.Fatal(err)
		}
		if err := tg.raw.DeleteCollection(ctx, ix.collection); err != nil {
			t.Fatal(err)
		}
		if got, err := ix.Search(ctx, []float32{1, 0, 0}, cortex.Filter{}, 3); err != nil || len(got) != 0 {
			t.Fatalf("search after delete: %v %v", got, err)
		}
		if err := ix.UpsertVectors(ctx, item); err != nil {
			t.Fatal(err)
		}
		if got, _ := ix.Search(ctx, []float32{1, 0, 0}, cortex.Filter{}, 3); ids(got) != "a/x" {
			t.Fatalf("after recreate: %s", ids(got))
		}
	})

	t.Run("configured size creates the collection at open", func(t *testing.T) {
		tg := newTarget(t)
		ix := tg.openIndex(t, Options{VectorSize: 5})
		ok, err := tg.raw.CollectionExists(ctx, ix.collection)
		if err != nil || !ok {
			t.Fatalf("exists %v %v", ok, err)
		}
		if err := ix.UpsertVectors(ctx, []cortex.VectorItem{{Collection: "a", ID: "x", Vector: []float32{1, 0, 0}}}); err == nil {
			t.Fatal("vector of the wrong size accepted")
		}
	})

	t.Run("bad input is refused before the wire", func(t *testing.T) {
		ix := newTarget(t).openIndex(t, Options{})
		for name, items := range map[string][]cortex.VectorItem{
			"empty vector": {{Collection: "a", ID: "x"}},
			"zero vector":  {{Collection: "a", ID: "x", Vector: []float32{0, 0}}},
			"NaN":          {{Collection: "a", ID: "x", Vector: []float32{float32(math.NaN()), 1}}},
			"Inf":          {{Collection: "a", ID: "x", Vector: []float32{float32(math.Inf(1)), 1}}},
			"no id":        {{Collection: "a", Vector: []float32{1, 1}}},
			"no coll":      {{ID: "x", Vector: []float32{1, 1}}},
			"mixed sizes":  {{Collection: "a", ID: "x", Vector: []float32{1, 1}}, {Collection: "a", ID: "y", Vector: []float32{1}}},
		} {
			if err := ix.UpsertVectors(ctx, items); err == nil {
				t.Errorf("%s accepted", name)
			}
		}
		if _, err := ix.Search(ctx, nil, cortex.Filter{}, 3); err == nil {
			t.Error("empty query vector accepted")
		}
		if _, err := ix.Search(ctx, []float32{1}, cortex.Filter{}, -1); err == nil {
			t.Error("negative k accepted")
		}
		if err := ix.UpsertVectors(ctx, nil); err != nil {
			t.Errorf("empty upsert: %v", err)
		}
	})

	t.Run("closed index says so", func(t *testing.T) {
		ix := newTarget(t).openIndex(t, Options{})
		if err := ix.Close(); err != nil {
			t.Fatal(err)
		}
		if err := ix.Close(); err != nil {
			t.Fatalf("second close: %v", err)
		}
		if err := ix.UpsertVectors(ctx, []cortex.VectorItem{{Collection: "a", ID: "x", Vector: []float32{1}}}); !errors.Is(err, ErrClosed) {
			t.Fatalf("upsert: %v", err)
		}
		if _, err := ix.Search(ctx, []float32{1}, cortex.Filter{}, 1); !errors.Is(err, ErrClosed) {
			t.Fatalf("search: %v", err)
		}
	})

	t.Run("many vectors go in chunks", func(t *testing.T) {
		ix := newTarget(t).openIndex(t, Options{})
		var items []cortex.VectorItem
		for i := range 700 {
			items = append(items, cortex.VectorItem{Collection: "a", ID: fmt.Sprint(i), Vector: []float32{float32(i + 1), 1}})
		}
		if err := ix.UpsertVectors(ctx, items); err != nil {
			t.Fatal(err)
		}
		got, err := ix.Search(ctx, []float32{0, 1}, cortex.Filter{}, 1)
		if err != nil || ids(got) != "a/0" {
			t.Fatalf("%s %v", ids(got), err)
		}
	})
}

func TestOpenFailsFastWhenNothingListens(t *testing.T) {
	srv := qdranttest.New(t)
	addr := srv.Addr()
	srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := Open(ctx, addr, Options{}); err == nil {
		t.Fatal("open succeeded with no server")
	}
	if time.Since(start) > 4*time.Second {
		t.Fatal("open did not respect the context deadline")
	}
}

func TestAPIKeyIsSentAndNeverShown(t *testing.T) {
	const key = "s3cret-key"
	srv := qdranttest.New(t, qdranttest.WithAPIKey(key))
	ctx := context.Background()
	ix, err := Open(ctx, srv.Addr(), Options{APIKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if err := ix.UpsertVectors(ctx, []cortex.VectorItem{{Collection: "a", ID: "x", Vector: []float32{1}}}); err != nil {
		t.Fatal(err)
	}
	bad, err := Open(ctx, srv.Addr(), Options{APIKey: "wrong-" + key})
	if err != nil {
		t.Fatal(err) // the health check is open, as in Qdrant
	}
	defer bad.Close()
	err = bad.UpsertVectors(ctx, []cortex.VectorItem{{Collection: "a", ID: "x", Vector: []float32{1}}})
	if status.Code(err) != codes.PermissionDenied || strings.Contains(err.Error(), key) {
		t.Fatalf("wrong key: %v", err)
	}
}

func TestParseAddr(t *testing.T) {
	for _, tc := range []struct {
		in   string
		host string
		port int
		tls  bool
		bad  bool
	}{
		{in: "qdrant", host: "qdrant", port: 6334},
		{in: "qdrant:7000", host: "qdrant", port: 7000},
		{in: "http://qdrant:6334", host: "qdrant", port: 6334},
		{in: "https://q.example", host: "q.example", port: 6334, tls: true},
		{in: "[::1]:6334", host: "::1", port: 6334},
		{in: "", bad: true},
		{in: "ftp://x", bad: true},
		{in: "x:99999", bad: true},
		{in: "x:abc", bad: true},
	} {
		h, p, tls, err := parseAddr(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("%q accepted", tc.in)
			}
			continue
		}
		if err != nil || h != tc.host || p != tc.port || tls != tc.tls {
			t.Errorf("%q → %q %d %v %v", tc.in, h, p, tls, err)
		}
	}
}

func TestPointIDIsStableAndDistinct(t *testing.T) {
	a := PointID("events", "x")
	if a != PointID("events", "x") {
		t.Fatal("not deterministic")
	}
	if _, err := uuid.Parse(a); err != nil {
		t.Fatal(err)
	}
	// The separator keeps ("ab","c") and ("a","bc") apart.
	if PointID("ab", "c") == PointID("a", "bc") || PointID("events", "x") == PointID("docs", "x") {
		t.Fatal("collision")
	}
}
