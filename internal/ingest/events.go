// Package ingest feeds the cluster's Warning events into Cortex: a watch
// (the informer's event handlers) plus a full sweep every few minutes as the
// floor, de-duplicated by (object, reason), through a bounded local queue so
// that a Cortex outage loses nothing and no tool call ever waits on it.
package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
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
	// ResendEvery makes every Nth sweep re-send all current documents, even
	// those Cortex already has (refilling a Cortex that lost its data); the
	// other sweeps send only what changed. Default 12 (hourly).
	ResendEvery int
	Log         *slog.Logger
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

	sent, failed, refused int
	// have fingerprints what Cortex accepted (or refused) per id, so that
	// a sweep does not re-embed documents that did not change.
	have   map[string][32]byte
	sweeps int

	// groups holds the current events of each (object, reason), so that
	// its document sums them all.
	gmu    sync.Mutex
	groups map[string]map[types.UID]*corev1.Event
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
	if o.ResendEvery <= 0 {
		o.ResendEvery = 12
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	e := &EventIngester{o: o, sink: sink, pending: map[string]cortex.Document{}, wake: make(chan struct{}, 1),
		groups: map[string]map[types.UID]*corev1.Event{}, have: map[string][32]byte{}}
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
		DeleteFunc: func(obj any) { e.forgetEvent(obj) },
	})
	if err != nil {
		return nil, fmt.Errorf("watch events: %w", err)
	}
	return e, nil
}

func (e *EventIngester) observe(obj any) string {
	ev, ok := obj.(*corev1.Event)
	if !ok || ev.Type != corev1.EventTypeWarning {
		return ""
	}
	key := groupKey(ev)
	e.gmu.Lock()
	if e.groups == nil {
		e.groups = map[string]map[types.UID]*corev1.Event{}
	}
	g := e.groups[key]
	if g == nil {
		g = map[types.UID]*corev1.Event{}
		e.groups[key] = g
	}
	g[eventUID(ev)] = ev
	evs := make([]*corev1.Event, 0, len(g))
	for _, x := range g {
		evs = append(evs, x)
	}
	e.gmu.Unlock()
	d := FoldedDocument(e.o.Cluster, evs)
	e.enqueue(d)
	return d.ID
}

// forgetEvent drops a deleted event from its group. Its document stays in
// Cortex: it is history.
func (e *EventIngester) forgetEvent(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	ev, ok := obj.(*corev1.Event)
	if !ok {
		return
	}
	key := groupKey(ev)
	e.gmu.Lock()
	defer e.gmu.Unlock()
	if g := e.groups[key]; g != nil {
		delete(g, eventUID(ev))
		if len(g) == 0 {
			delete(e.groups, key)
		}
	}
}

// groupKey is the (namespace, object, reason) an event is folded under.
func groupKey(ev *corev1.Event) string {
	io := ev.InvolvedObject
	return io.Namespace + "\x00" + io.Kind + "\x00" + io.Name + "\x00" + ev.Reason
}

// eventUID identifies an event within its group; objects not from the API
// server (no UID) fall back to their name.
func eventUID(ev *corev1.Event) types.UID {
	if ev.UID != "" {
		return ev.UID
	}
	return types.UID(ev.Namespace + "/" + ev.Name)
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// EventDocument renders one Warning event as a cluster_events document.
func EventDocument(cluster string, ev *corev1.Event) cortex.Document {
	return FoldedDocument(cluster, []*corev1.Event{ev})
}

// eventSpan is when an event was first and last seen and how often.
func eventSpan(ev *corev1.Event) (first, last time.Time, count int32) {
	last = ev.LastTimestamp.Time
	if ev.EventTime.After(last) {
		last = ev.EventTime.Time
	}
	if ev.Series != nil && ev.Series.LastObservedTime.After(last) {
		last = ev.Series.LastObservedTime.Time
	}
	if last.IsZero() {
		last = ev.CreationTimestamp.Time
	}
	count = ev.Count
	if ev.Series != nil && ev.Series.Count > count {
		count = ev.Series.Count
	}
	count = max(count, 1)
	first = ev.FirstTimestamp.Time
	if first.IsZero() {
		first = ev.CreationTimestamp.Time
	}
	return first, last, count
}

// FoldedDocument renders the Warning events of one (object, reason) as one
// document: counts summed, first and last seen over all of them, the
// message of the latest. The result does not depend on the order of evs,
// so a sweep re-sends the same text instead of flapping between events.
func FoldedDocument(cluster string, evs []*corev1.Event) cortex.Document {
	var ev *corev1.Event
	var first, last, evLast time.Time
	var count int32
	for _, e := range evs {
		f, l, c := eventSpan(e)
		count += c
		if first.IsZero() || f.Before(first) {
			first = f
		}
		last = maxTime(last, l)
		if ev == nil || l.After(evLast) || l.Equal(evLast) && e.Name > ev.Name {
			ev, evLast = e, l
		}
	}
	io := ev.InvolvedObject
	obj := strings.ToLower(io.Kind) + "/" + io.Name
	// Anything in an Event is whatever its writer sent; Cortex refuses a
	// document with invalid UTF-8, a NUL, an id over cortex.MaxKeyBytes or
	// text over 64 KiB, and one refused document must not stall the rest.
	cluster, ns, reason := sanitize(cluster), sanitize(io.Namespace), sanitize(ev.Reason)
	obj = sanitize(obj)
	id := eventID(cluster, ns, obj, reason, first)
	// Redact before the final clip, so a secret cut in half by it is still
	// recognised; the first clip only bounds the cost of redacting.
	msg := clip(redact.String(sanitize(clip(ev.Message, 4*maxMessageBytes))), maxMessageBytes)
	ns, obj, reason = clip(ns, maxFieldBytes), clip(obj, maxFieldBytes), clip(reason, maxFieldBytes)
	where := obj
	if ns != "" { // nodes and other cluster-scoped objects have none
		where += " in namespace " + ns
	}
	text := fmt.Sprintf("Warning %s on %s: %s (seen %d times)", reason, where, msg, count)
	return cortex.Document{
		ID: id, Collection: cortex.CollectionEvents, Text: text, Cluster: cluster,
		CreatedAt: first, UpdatedAt: last,
		Metadata: map[string]string{"kind": "event", "reason": reason, "object": obj, "namespace": ns,
			"count": fmt.Sprint(count), "last_seen": last.UTC().Format(time.RFC3339)},
	}
}

const (
	// maxMessageBytes caps an event message in a document: enough for any
	// useful kubelet or controller message, far below Cortex's 64 KiB.
	maxMessageBytes = 4 << 10
	// maxFieldBytes caps the reason, object and namespace in text and
	// metadata (Cortex allows 8 KiB of metadata in all).
	maxFieldBytes = 512
	clipMarker    = " …[clipped]"
)

// eventID is the (cluster, namespace, object, reason) key of one episode:
// it ends with when the episode's events were first seen. Kubernetes drops
// events an hour after they stop; when the problem comes back days later,
// its new episode gets a document of its own instead of overwriting the
// history of the last one. Within an episode (and across restarts, since
// the first-seen time is the events' own) the id stays the same. One too
// long for Cortex keeps a readable prefix and ends in a hash of the whole
// key, so it stays unique and stable.
func eventID(cluster, ns, obj, reason string, first time.Time) string {
	id := fmt.Sprintf("event:%s:%s:%s:%s@%s", cluster, ns, obj, reason, first.UTC().Format("2006-01-02T15:04:05Z"))
	if len(id) <= cortex.MaxKeyBytes {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	tail := "~" + hex.EncodeToString(sum[:16])
	return cutUTF8(id, cortex.MaxKeyBytes-len(tail)) + tail
}

// sanitize makes s storable text: invalid UTF-8 and NUL bytes become U+FFFD.
func sanitize(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}

// clip shortens s to at most n bytes, ending in clipMarker, without
// splitting a UTF-8 sequence.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return cutUTF8(s, n-len(clipMarker)) + clipMarker
}

// cutUTF8 returns the longest prefix of s of at most n bytes that does not
// end inside a UTF-8 sequence.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Back up over at most one sequence; invalid bytes are cut anywhere.
	for i := 0; i < utf8.UTFMax-1 && n > 0 && !utf8.RuneStart(s[n]); i++ {
		n--
	}
	return s[:n]
}

// enqueue keeps the newest version of each document; when the queue is
// full the oldest distinct problem is dropped and counted.
func (e *EventIngester) enqueue(d cortex.Document) {
	e.mu.Lock()
	if fp, ok := e.have[d.ID]; ok && fp == fingerprint(d) {
		e.mu.Unlock()
		return // Cortex has exactly this
	}
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

// fingerprint identifies what a document says.
func fingerprint(d cortex.Document) [32]byte {
	return sha256.Sum256([]byte(d.Text + "\x00" + d.UpdatedAt.UTC().Format(time.RFC3339Nano)))
}

// Stats reports documents sent, failed ingest calls, documents dropped from
// a full queue, and documents waiting.
func (e *EventIngester) Stats() (sent, failed, dropped, pending int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.sent, e.failed, e.dropped, len(e.order)
}

// Refused reports documents Cortex refused as invalid, which were dropped.
func (e *EventIngester) Refused() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.refused
}

// Sweep re-sends every current Warning event (the floor under the watch).
func (e *EventIngester) Sweep() {
	evs, err := e.lister()
	if err != nil {
		e.o.Log.Warn("event sweep", "err", err)
		return
	}
	e.mu.Lock()
	e.sweeps++
	if e.sweeps%e.o.ResendEvery == 0 {
		clear(e.have)
	}
	e.mu.Unlock()
	current := make(map[string]bool, len(evs))
	for _, ev := range evs {
		if id := e.observe(ev); id != "" {
			current[id] = true
		}
	}
	// Forget fingerprints of problems whose events are gone, so the map
	// stays as small as the cluster's current Warning events.
	e.mu.Lock()
	for id := range e.have {
		if !current[id] {
			delete(e.have, id)
		}
	}
	e.mu.Unlock()
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
// failed, leaving the unsent documents queued. A document Cortex refuses as
// invalid is dropped and logged: sending it again cannot succeed, and
// retrying its batch forever would stop ingestion for good.
func (e *EventIngester) flush(ctx context.Context) bool {
	for {
		e.mu.Lock()
		n := min(len(e.order), e.o.Batch)
		if n == 0 {
			e.mu.Unlock()
			return true
		}
		docs := make([]cortex.Document, n)
		for i, id := range e.order[:n] {
			docs[i] = e.pending[id]
		}
		e.mu.Unlock()

		done, refused, err := e.send(ctx, docs)
		for _, r := range refused {
			e.o.Log.Warn("cortex refused an event document; dropped", "id", r.doc.ID, "err", r.err)
		}
		e.mu.Lock()
		e.forget(done)
		e.forget(refused)
		e.sent += len(done)
		e.refused += len(refused)
		if err != nil {
			e.failed++
			e.mu.Unlock()
			e.o.Log.Warn("ingest events into cortex; will retry", "pending", len(e.order), "err", err)
			return false
		}
		e.mu.Unlock()
	}
}

// outcome is one document's fate in send; err is why Cortex refused it.
type outcome struct {
	doc cortex.Document
	err error
}

// send ingests docs, halving a batch Cortex refuses as invalid until the
// refused documents stand alone, so k bad documents cost about k·log n
// calls and the good ones still go in. It stops at the first other error
// (Cortex down, a timeout), which it returns; what was not yet sent is in
// neither list and stays queued.
func (e *EventIngester) send(ctx context.Context, docs []cortex.Document) (done, refused []outcome, err error) {
	cctx, cancel := context.WithTimeout(ctx, e.o.Timeout)
	_, err = e.sink.Ingest(cctx, cortex.IngestRequest{Collection: cortex.CollectionEvents, Documents: docs})
	cancel()
	switch {
	case err == nil:
		for _, d := range docs {
			done = append(done, outcome{doc: d})
		}
		return done, nil, nil
	case !errors.Is(err, cortex.ErrInvalid) || ctx.Err() != nil:
		return nil, nil, err
	case len(docs) == 1:
		return nil, []outcome{{docs[0], err}}, nil
	}
	half := len(docs) / 2
	done, refused, err = e.send(ctx, docs[:half])
	if err != nil {
		return done, refused, err
	}
	d2, r2, err := e.send(ctx, docs[half:])
	return append(done, d2...), append(refused, r2...), err
}

// forget removes what was sent or refused from the queue, unless it changed
// meanwhile (then the newer version stays queued). Callers hold e.mu.
func (e *EventIngester) forget(sent []outcome) {
	if len(sent) == 0 {
		return
	}
	if e.have == nil {
		e.have = map[string][32]byte{}
	}
	for _, o := range sent {
		e.have[o.doc.ID] = fingerprint(o.doc)
		if cur, ok := e.pending[o.doc.ID]; ok && cur.UpdatedAt.Equal(o.doc.UpdatedAt) && cur.Text == o.doc.Text {
			delete(e.pending, o.doc.ID)
		}
	}
	kept := e.order[:0]
	for _, id := range e.order {
		if _, ok := e.pending[id]; ok {
			kept = append(kept, id)
		}
	}
	e.order = kept
}
