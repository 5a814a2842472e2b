// Package ingest feeds the cluster's Warning events into Cortex: a watch
// (the informer's event handlers) plus a full sweep every few minutes as the
// floor, de-duplicated by (object, reason), through a bounded local queue so
// that a Cortex outage loses nothing and no tool call ever waits on it.
package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
	"github.com/cluster-shepherd/shepherd/internal/redact"
)

// Sink is where documents go; cortex.Memory satisfies it.
type Sink interface {
	Ingest(ctx context.Context, req cortex.IngestRequest) (cortex.IngestResponse, error)
}

// Options configure an EventIngester.
type Options struct {
	Cluster   string
	Sweep     time.Duration // full re-send of current events; default 5 minutes
	QueueSize int           // pending documents kept while Cortex is down; default 10000
	Batch     int           // documents per ingest call; default 200
	Retry     time.Duration // first retry delay, doubling to 1 minute; default 1 s
	Timeout   time.Duration // per ingest call; default 10 s
	Log       *slog.Logger
}

// EventIngester turns Warning events into cluster_events documents. The
// document id is the (namespace, object, reason) key, so repeats of one
// problem update one document (count, last seen) instead of piling up.
type EventIngester struct {
	o      Options
	sink   Sink
	lister func() ([]*corev1.Event, error)

	mu      sync.Mutex
	pending map[string]cortex.Document // by id; newest wins
	order   []string
	dropped int
	wake    chan struct{}

	sent, failed int
}

// NewEventIngester builds an ingester over an event informer.
func NewEventIngester(sink Sink, inf cache.SharedIndexInformer, o Options) (*EventIngester, error) {
	if o.Sweep <= 0 {
		o.Sweep = 5 * time.Minute
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 10000
	}
	if o.Batch <= 0 {
		o.Batch = 200
	}
	if o.Retry <= 0 {
		o.Retry = time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	e := &EventIngester{o: o, sink: sink, pending: map[string]cortex.Document{}, wake: make(chan struct{}, 1)}
	e.lister = func() ([]*corev1.Event, error) {
		var out []*corev1.Event
		for _, obj := range inf.GetStore().List() {
			if ev, ok := obj.(*corev1.Event); ok {
				out = append(out, ev)
			}
		}
		return out, nil
	}
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { e.observe(obj) },
		UpdateFunc: func(_, obj any) { e.observe(obj) },
	})
	if err != nil {
		return nil, fmt.Errorf("watch events: %w", err)
	}
	return e, nil
}

func (e *EventIngester) observe(obj any) {
	ev, ok := obj.(*corev1.Event)
	if !ok || ev.Type != corev1.EventTypeWarning {
		return
	}
	e.enqueue(EventDocument(e.o.Cluster, ev))
}

// EventDocument renders one Warning event as a cluster_events document.
func EventDocument(cluster string, ev *corev1.Event) cortex.Document {
	io := ev.InvolvedObject
	obj := strings.ToLower(io.Kind) + "/" + io.Name
	last := ev.LastTimestamp.Time
	if ev.EventTime.After(last) {
		last = ev.EventTime.Time
	}
	if ev.Series != nil && ev.Series.LastObservedTime.After(last) {
		last = ev.Series.LastObservedTime.Time
	}
	if last.IsZero() {
		last = ev.CreationTimestamp.Time
	}
	count := ev.Count
	if ev.Series != nil && ev.Series.Count > count {
		count = ev.Series.Count
	}
	if count < 1 {
		count = 1
	}
	first := ev.FirstTimestamp.Time
	if first.IsZero() {
		first = ev.CreationTimestamp.Time
	}
	id := fmt.Sprintf("event:%s:%s:%s:%s", cluster, io.Namespace, obj, ev.Reason)
	text := fmt.Sprintf("Warning %s on %s in namespace %s: %s (seen %d times)", ev.Reason, obj, io.Namespace, redact.String(ev.Message), count)
	return cortex.Document{
		ID: id, Collection: cortex.CollectionEvents, Text: text, Cluster: cluster,
		CreatedAt: first, UpdatedAt: last,
		Metadata: map[string]string{"kind": "event", "reason": ev.Reason, "object": obj, "namespace": io.Namespace,
			"count": fmt.Sprint(count), "last_seen": last.UTC().Format(time.RFC3339)},
	}
}

// enqueue keeps the newest version of each document; when the queue is
// full the oldest distinct problem is dropped and counted.
func (e *EventIngester) enqueue(d cortex.Document) {
	e.mu.Lock()
	if _, ok := e.pending[d.ID]; !ok {
		if len(e.order) >= e.o.QueueSize {
			oldest := e.order[0]
			e.order = e.order[1:]
			delete(e.pending, oldest)
			e.dropped++
		}
		e.order = append(e.order, d.ID)
	}
	e.pending[d.ID] = d
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Stats reports documents sent, failed ingest calls, documents dropped from
// a full queue, and documents waiting.
func (e *EventIngester) Stats() (sent, failed, dropped, pending int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.sent, e.failed, e.dropped, len(e.order)
}

// Sweep re-sends every current Warning event (the floor under the watch).
func (e *EventIngester) Sweep() {
	evs, err := e.lister()
	if err != nil {
		e.o.Log.Warn("event sweep", "err", err)
		return
	}
	for _, ev := range evs {
		e.observe(ev)
	}
}

// Run sends queued documents until ctx ends, sweeping every Options.Sweep.
func (e *EventIngester) Run(ctx context.Context) {
	sweep := time.NewTicker(e.o.Sweep)
	defer sweep.Stop()
	delay := e.o.Retry
	for {
		if ok := e.flush(ctx); !ok {
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
			delay = min(delay*2, time.Minute)
			continue
		}
		delay = e.o.Retry
		select {
		case <-ctx.Done():
			return
		case <-e.wake:
		case <-sweep.C:
			e.Sweep()
		}
	}
}

// flush sends everything pending in batches; it reports false when Cortex
// failed, leaving the unsent documents queued.
func (e *EventIngester) flush(ctx context.Context) bool {
	for {
		e.mu.Lock()
		n := min(len(e.order), e.o.Batch)
		if n == 0 {
			e.mu.Unlock()
			return true
		}
		ids := append([]string(nil), e.order[:n]...)
		docs := make([]cortex.Document, n)
		for i, id := range ids {
			docs[i] = e.pending[id]
		}
		e.mu.Unlock()

		cctx, cancel := context.WithTimeout(ctx, e.o.Timeout)
		_, err := e.sink.Ingest(cctx, cortex.IngestRequest{Collection: cortex.CollectionEvents, Documents: docs})
		cancel()
		e.mu.Lock()
		if err != nil {
			e.failed++
			e.mu.Unlock()
			e.o.Log.Warn("ingest events into cortex; will retry", "pending", len(e.order), "err", err)
			return false
		}
		// Remove what was sent, unless it changed meanwhile (then the newer
		// version stays queued).
		for i, id := range ids {
			if cur, ok := e.pending[id]; ok && cur.UpdatedAt.Equal(docs[i].UpdatedAt) && cur.Text == docs[i].Text {
				delete(e.pending, id)
			}
		}
		kept := e.order[:0]
		for _, id := range e.order {
			if _, ok := e.pending[id]; ok {
				kept = append(kept, id)
			}
		}
		e.order = kept
		e.sent += n
		e.mu.Unlock()
	}
}
