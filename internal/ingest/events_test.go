package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

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

// clientWithNamespace connects to the test control plane and creates ns.
func clientWithNamespace(t *testing.T, ctx context.Context, ns string) (*cluster.Client, kubernetes.Interface) {
	t.Helper()
	client, err := cluster.NewClient(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	obj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}
	if _, err := client.Kube.CoreV1().Namespaces().Create(ctx, obj, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return client, client.Kube
}

func TestEventsReachCortexDedupedAndSurviveOutage(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client, kube := clientWithNamespace(t, ctx, "ingest")
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

func TestEventDocumentFitsCortex(t *testing.T) {
	huge := strings.Repeat("volume ünmount failed\x00\xff ", 4000) // ~100 KiB, NUL and invalid UTF-8
	long := strings.Repeat("x", 1000)
	cases := []struct {
		name string
		ev   *corev1.Event
	}{
		{"huge message", warning("ingest", "immich-0", "FailedMount", huge, 1)},
		{"long object name", warning("ingest", long, "BackOff", "Back-off restarting failed container", 1)},
		{"long reason", warning("ingest", "immich-0", long, "odd controller", 1)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := EventDocument("lab", c.ev)
			if err := cortex.CheckDocument(d); err != nil {
				t.Fatal(err)
			}
			if len(d.ID) > cortex.MaxKeyBytes || len(d.Text) > 8<<10 {
				t.Fatalf("id %d bytes, text %d bytes", len(d.ID), len(d.Text))
			}
			if again := EventDocument("lab", c.ev); again.ID != d.ID {
				t.Fatalf("id is not deterministic: %q vs %q", d.ID, again.ID)
			}
		})
	}
	d := EventDocument("lab", cases[0].ev)
	if !strings.Contains(d.Text, clipMarker) || !strings.Contains(d.Text, "volume ünmount failed\uFFFD\uFFFD") {
		t.Fatalf("message not clipped and sanitised: %.200q", d.Text)
	}
	// Ids that are cut keep apart what differs only past the cut.
	a := EventDocument("lab", warning("ingest", long+"a", "BackOff", "m", 1))
	b := EventDocument("lab", warning("ingest", long+"b", "BackOff", "m", 1))
	if a.ID == b.ID {
		t.Fatalf("two objects share id %q", a.ID)
	}
	ev := warning("ingest", "immich-0", "BackOff", "m", 1)
	ev.FirstTimestamp = metav1.NewTime(time.Date(2026, 11, 25, 10, 18, 0, 0, time.UTC))
	if short := EventDocument("lab", ev); short.ID != "event:lab:ingest:pod/immich-0:BackOff@2026-11-25T10:18:00Z" {
		t.Fatalf("short id changed: %q", short.ID)
	}
	// The same problem back a week later, after its events expired, is a
	// new episode: a document of its own, the old one kept as history.
	later := ev.DeepCopy()
	later.FirstTimestamp = metav1.NewTime(ev.FirstTimestamp.Add(7 * 24 * time.Hour))
	if EventDocument("lab", later).ID == EventDocument("lab", ev).ID {
		t.Fatal("a new episode overwrites the last one's document")
	}
}

func TestOversizedEventsAreClippedAndLaterEventsArrive(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client, kube := clientWithNamespace(t, ctx, "ingest-poison")
	svc := newCortex(t)
	// The control plane is shared with the other tests: count only this
	// namespace's documents.
	rec := &recording{svc: svc, ns: "ingest-poison", ids: map[string]bool{}}
	c := cluster.NewCache(client, nil)
	ing, err := NewEventIngester(rec, c.EventInformer(), Options{Cluster: "lab", Retry: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	go ing.Run(ctx)

	create := func(e *corev1.Event) {
		t.Helper()
		e.GenerateName = "poison."
		if _, err := kube.CoreV1().Events(e.Namespace).Create(ctx, e, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	create(warning("ingest-poison", "paperless-0", "FailedMount", "MountVolume.SetUp failed: "+strings.Repeat("stack frame ", 7000), 1)) // ~82 KiB
	create(warning("ingest-poison", strings.Repeat("nextcloud-", 80), "BackOff", "Back-off restarting failed container", 1))
	stored := func(n int) func() bool {
		return func() bool { return rec.stored() == n }
	}
	eventually(t, "both oversized events in cortex", stored(2))
	create(warning("ingest-poison", "mail-0", "Unhealthy", "Readiness probe failed: dovecot not answering", 1))
	eventually(t, "a later event in cortex", stored(3))
	res, err := svc.Query(ctx, cortex.QueryRequest{Query: "paperless MountVolume stack frame", TopK: 3, Collections: []string{cortex.CollectionEvents}})
	if err != nil || len(res.Hits) == 0 || !strings.Contains(res.Hits[0].Text, clipMarker) {
		t.Fatalf("clipped event not found: %v %+v", err, res.Hits)
	}
	if ing.Refused() != 0 {
		t.Fatalf("refused %d documents", ing.Refused())
	}
}

// recording passes documents to svc and counts the distinct ids of one
// namespace that it accepted.
type recording struct {
	svc *cortex.Service
	ns  string
	mu  sync.Mutex
	ids map[string]bool
}

func (r *recording) Ingest(ctx context.Context, req cortex.IngestRequest) (cortex.IngestResponse, error) {
	resp, err := r.svc.Ingest(ctx, req)
	if err == nil {
		r.mu.Lock()
		for _, d := range req.Documents {
			if d.Metadata["namespace"] == r.ns {
				r.ids[d.ID] = true
			}
		}
		r.mu.Unlock()
	}
	return resp, err
}

func (r *recording) stored() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ids)
}

// refusing is a Cortex that refuses, as invalid, any batch holding one id,
// the way a real one checks a batch whole before writing anything.
type refusing struct {
	svc *cortex.Service
	id  string
}

func (r *refusing) Ingest(ctx context.Context, req cortex.IngestRequest) (cortex.IngestResponse, error) {
	for _, d := range req.Documents {
		if d.ID == r.id {
			return cortex.IngestResponse{}, fmt.Errorf("%w: document %q is poison", cortex.ErrInvalid, d.ID)
		}
	}
	return r.svc.Ingest(ctx, req)
}

func TestRefusedDocumentDoesNotBlockOthers(t *testing.T) {
	ctx := context.Background()
	svc := newCortex(t)
	srv := httptest.NewServer(cortex.NewHandler(svc))
	defer srv.Close()
	remote, err := cortex.NewClient(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	poison := EventDocument("lab", warning("ingest", "poison-0", "BackOff", "m", 1))
	bad := EventDocument("lab", warning("ingest", "bad-0", "BackOff", "m", 1))
	bad.Text = "NUL\x00 in text" // as if built elsewhere: the real Cortex refuses it
	cases := []struct {
		name string
		sink Sink
		bad  cortex.Document
	}{
		{"fake refusal in process", &refusing{svc: svc, id: poison.ID}, poison},
		{"real refusal over HTTP", remote, bad},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := &EventIngester{sink: c.sink, pending: map[string]cortex.Document{}, wake: make(chan struct{}, 1),
				o: Options{Cluster: "lab", QueueSize: 100, Batch: 4, Timeout: 10 * time.Second, Log: slog.New(slog.DiscardHandler)}}
			for j := 0; j < 9; j++ {
				if j == 5 {
					e.enqueue(c.bad)
				}
				e.enqueue(EventDocument("lab", warning("ingest", fmt.Sprintf("case%d-pod-%d", i, j), "BackOff", "Back-off restarting", 1)))
			}
			if !e.flush(ctx) {
				t.Fatal("flush reported a failure for a refused document")
			}
			sent, failed, _, pending := e.Stats()
			if sent != 9 || failed != 0 || pending != 0 || e.Refused() != 1 {
				t.Fatalf("sent %d failed %d pending %d refused %d", sent, failed, pending, e.Refused())
			}
			if n, _ := svc.Count(ctx, cortex.CollectionEvents); n != 9*(i+1) {
				t.Fatalf("want %d documents, got %d", 9*(i+1), n)
			}
		})
	}
}

// TestFoldedDocument: the events of one (object, reason) make one document
// that sums their counts, spans their times and shows the latest message,
// whatever order they come in.
func TestFoldedDocument(t *testing.T) {
	at := func(m int) metav1.Time { return metav1.NewTime(time.Date(2026, 11, 1, 10, m, 0, 0, time.UTC)) }
	a := warning("mail", "rspamd-0", "BackOff", "Back-off restarting failed container rspamd", 40)
	a.Name, a.FirstTimestamp, a.LastTimestamp = "rspamd-0.a", at(0), at(20)
	b := warning("mail", "rspamd-0", "BackOff", "Back-off restarting failed container rspamd-init", 2)
	b.Name, b.FirstTimestamp, b.LastTimestamp = "rspamd-0.b", at(5), at(30)
	d1 := FoldedDocument("lab", []*corev1.Event{a, b})
	d2 := FoldedDocument("lab", []*corev1.Event{b, a})
	if d1.Text != d2.Text || !d1.UpdatedAt.Equal(d2.UpdatedAt) || !d1.CreatedAt.Equal(d2.CreatedAt) {
		t.Fatalf("order changes the document:\n%s\n%s", d1.Text, d2.Text)
	}
	if !strings.Contains(d1.Text, "rspamd-init (seen 42 times)") || d1.Metadata["count"] != "42" {
		t.Fatalf("want the latest message and 42: %s %v", d1.Text, d1.Metadata)
	}
	if !d1.CreatedAt.Equal(at(0).Time) || !d1.UpdatedAt.Equal(at(30).Time) {
		t.Fatalf("span %s..%s", d1.CreatedAt, d1.UpdatedAt)
	}
	node := warning("", "worker-2", "EvictionThresholdMet", "Attempting to reclaim memory", 3)
	node.InvolvedObject.Kind = "Node"
	if got := EventDocument("lab", node).Text; got != "Warning EvictionThresholdMet on node/worker-2: Attempting to reclaim memory (seen 3 times)" {
		t.Errorf("cluster-scoped event: %q", got)
	}
	if d1.ID != EventDocument("lab", a).ID {
		t.Fatalf("folded id %q differs from a single event's", d1.ID)
	}
}

func TestIngesterFoldsEventsOfOneProblem(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client, kube := clientWithNamespace(t, ctx, "ingest-fold")
	svc := newCortex(t)
	c := cluster.NewCache(client, nil)
	ing, err := NewEventIngester(svc, c.EventInformer(), Options{Cluster: "lab", Retry: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []*corev1.Event{
		warning("ingest-fold", "rspamd-0", "BackOff", "Back-off restarting failed container rspamd", 40),
		warning("ingest-fold", "rspamd-0", "BackOff", "Back-off restarting failed container rspamd", 2),
	} {
		if _, err := kube.CoreV1().Events("ingest-fold").Create(ctx, e, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Start(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	go ing.Run(ctx)
	eventually(t, "one document counting both events", func() bool {
		res, err := svc.Query(ctx, cortex.QueryRequest{Query: "rspamd back-off restarting", TopK: 5, Collections: []string{cortex.CollectionEvents}})
		if err != nil {
			return false
		}
		n := 0
		for _, h := range res.Hits {
			if h.Metadata["namespace"] == "ingest-fold" {
				n++
				if !strings.Contains(h.Text, "seen 42 times") {
					return false
				}
			}
		}
		return n == 1
	})
	// A sweep re-sends the same folded text, whatever order it lists in.
	ing.Sweep()
	ing.mu.Lock()
	defer ing.mu.Unlock()
	for _, d := range ing.pending {
		if d.Metadata["namespace"] == "ingest-fold" && !strings.Contains(d.Text, "seen 42 times") {
			t.Fatalf("sweep changed the document: %s", d.Text)
		}
	}
}

// counting is a sink that counts the documents it accepted.
type counting struct {
	mu   sync.Mutex
	docs int
}

func (c *counting) Ingest(_ context.Context, req cortex.IngestRequest) (cortex.IngestResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.docs += len(req.Documents)
	return cortex.IngestResponse{Upserted: len(req.Documents)}, nil
}

func (c *counting) n() int { c.mu.Lock(); defer c.mu.Unlock(); return c.docs }

// TestSweepSendsOnlyChanges: a sweep does not re-send (and so re-embed)
// what Cortex already has; a change is sent; every ResendEvery-th sweep
// sends everything, to refill a Cortex that lost its data.
func TestSweepSendsOnlyChanges(t *testing.T) {
	ctx := context.Background()
	sink := &counting{}
	evs := []*corev1.Event{
		warning("ingest", "a-0", "BackOff", "Back-off restarting", 3),
		warning("ingest", "b-0", "Unhealthy", "Readiness probe failed", 7),
	}
	for i, ev := range evs {
		ev.Name, ev.UID = fmt.Sprintf("ev-%d", i), types.UID(fmt.Sprintf("uid-%d", i))
	}
	e := &EventIngester{sink: sink, pending: map[string]cortex.Document{}, wake: make(chan struct{}, 1),
		groups: map[string]map[types.UID]*corev1.Event{}, have: map[string][32]byte{},
		lister: func() ([]*corev1.Event, error) { return evs, nil },
		o:      Options{Cluster: "lab", QueueSize: 100, Batch: 10, Timeout: time.Second, ResendEvery: 3, Log: slog.New(slog.DiscardHandler)}}
	sweep := func() int {
		before := sink.n()
		e.Sweep()
		if !e.flush(ctx) {
			t.Fatal("flush failed")
		}
		return sink.n() - before
	}
	if n := sweep(); n != 2 {
		t.Fatalf("first sweep sent %d, want 2", n)
	}
	if n := sweep(); n != 0 {
		t.Fatalf("unchanged sweep sent %d, want 0", n)
	}
	evs[1].Count = 8
	evs[1].LastTimestamp = metav1.NewTime(evs[1].LastTimestamp.Add(time.Minute))
	if n := sweep(); n != 2 { // third sweep: the periodic full re-send
		t.Fatalf("full re-send sent %d, want 2", n)
	}
	evs[0].Count = 4
	if n := sweep(); n != 1 {
		t.Fatalf("sweep after one change sent %d, want 1", n)
	}
	evs = evs[:1]
	sweep()
	if len(e.have) != 1 {
		t.Fatalf("fingerprints of vanished events kept: %d", len(e.have))
	}
}
