package ingest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cluster-shepherd/shepherd/internal/cluster"
	"github.com/cluster-shepherd/shepherd/internal/cortex"
	"github.com/cluster-shepherd/shepherd/internal/cortex/lexical"
	"github.com/cluster-shepherd/shepherd/internal/cortex/sqlite"
	"github.com/cluster-shepherd/shepherd/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// outage puts a real Cortex behind a switch, to take it down and up.
type outage struct {
	svc  *cortex.Service
	down atomic.Bool
}

func (o *outage) Ingest(ctx context.Context, req cortex.IngestRequest) (cortex.IngestResponse, error) {
	if o.down.Load() {
		return cortex.IngestResponse{}, errors.New("dial tcp 127.0.0.1:8090: connect: connection refused")
	}
	return o.svc.Ingest(ctx, req)
}

func newCortex(t *testing.T) *cortex.Service {
	st, err := sqlite.Open(context.Background(), ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	svc, err := cortex.NewService(cortex.Deps{Documents: st, Vectors: st, Graph: st, Embedder: lexical.New(0)}, cortex.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	return svc
}

func warning(ns, pod, reason, msg string, count int32) *corev1.Event {
	now := metav1.Now()
	return &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: pod + ".", Namespace: ns},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: pod},
		Reason:         reason, Message: msg, Type: corev1.EventTypeWarning, Count: count,
		FirstTimestamp: now, LastTimestamp: now, Source: corev1.EventSource{Component: "kubelet"},
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestEventsReachCortexDedupedAndSurviveOutage(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client, err := cluster.NewClient(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	kube := client.Kube
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ingest"}}
	if _, err := kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := newCortex(t)
	sink := &outage{svc: svc}
	c := cluster.NewCache(client, nil)
	ing, err := NewEventIngester(sink, c.EventInformer(), Options{Cluster: "lab", Retry: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	go ing.Run(ctx)

	// Two Event objects for one (object, reason): one document.
	for _, n := range []int32{3, 9} {
		if _, err := kube.CoreV1().Events("ingest").Create(ctx, warning("ingest", "vaultwarden-0", "BackOff", "Back-off restarting failed container vaultwarden", n), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Normal events are not ingested.
	normal := warning("ingest", "vaultwarden-0", "Pulled", "Successfully pulled image", 1)
	normal.Type = corev1.EventTypeNormal
	kube.CoreV1().Events("ingest").Create(ctx, normal, metav1.CreateOptions{})

	find := func(q string) []cortex.Hit {
		res, err := svc.Query(ctx, cortex.QueryRequest{Query: q, TopK: 10, Collections: []string{cortex.CollectionEvents}})
		if err != nil {
			t.Fatal(err)
		}
		return res.Hits
	}
	eventually(t, "BackOff event in cortex", func() bool { return len(find("vaultwarden back-off restarting")) > 0 })
	n, _ := svc.Count(ctx, cortex.CollectionEvents)
	if n != 1 {
		t.Fatalf("want 1 de-duplicated event document, got %d", n)
	}
	hit := find("vaultwarden back-off restarting")[0]
	if hit.Cluster != "lab" || !strings.Contains(hit.Text, "BackOff") {
		t.Fatalf("document: %+v", hit)
	}

	// Cortex goes down: events queue, the informer is never blocked.
	sink.down.Store(true)
	for i := 0; i < 5; i++ {
		e := warning("ingest", fmt.Sprintf("immich-%d", i), "FailedMount", fmt.Sprintf("MountVolume.SetUp failed for volume library-%d", i), 1)
		if _, err := kube.CoreV1().Events("ingest").Create(ctx, e, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "failed attempts while down", func() bool {
		_, failed, _, pending := ing.Stats()
		return failed > 0 && pending == 5
	})
	sink.down.Store(false)
	eventually(t, "queue drained after the outage", func() bool {
		_, _, _, pending := ing.Stats()
		return pending == 0
	})
	n, _ = svc.Count(ctx, cortex.CollectionEvents)
	if n != 6 {
		t.Fatalf("after the outage want 6 documents, got %d: something was lost", n)
	}
	if _, _, dropped, _ := ing.Stats(); dropped != 0 {
		t.Fatalf("dropped %d", dropped)
	}
}

func TestQueueIsBounded(t *testing.T) {
	e := &EventIngester{o: Options{QueueSize: 3}, pending: map[string]cortex.Document{}, wake: make(chan struct{}, 1)}
	for i := 0; i < 5; i++ {
		e.enqueue(cortex.Document{ID: fmt.Sprint(i)})
	}
	e.enqueue(cortex.Document{ID: "4", Text: "newer"}) // an update, not a new entry
	_, _, dropped, pending := e.Stats()
	if dropped != 2 || pending != 3 || e.pending["4"].Text != "newer" {
		t.Fatalf("dropped %d pending %d", dropped, pending)
	}
}
