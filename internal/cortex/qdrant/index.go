// Package qdrant keeps Cortex's document vectors in Qdrant over gRPC, the
// production vector index next to PostgreSQL's documents and graph.
package qdrant

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/google/uuid"
	qc "github.com/qdrant/go-client/qdrant"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
)

// DefaultCollection is the Qdrant collection that holds every Cortex
// collection's vectors, told apart by payload.
const DefaultCollection = "cortex"

// DefaultPort is Qdrant's gRPC port (6333 is its REST port).
const DefaultPort = 6334

const (
	upsertChunk = 256 // points per request, well under gRPC's message limit
	maxK        = 1000
)

// Payload keys written on every point.
const (
	keyCollection = "collection"
	keyID         = "id"
	keyCluster    = "cluster"
)

// pointNamespace makes point ids a pure function of (collection, id), so
// re-ingesting a document overwrites its point instead of adding one.
var pointNamespace = uuid.MustParse("6f1f4d52-8c3e-4d7a-9a43-2c1f0e6b7a10")

// ErrClosed is returned by every call made after Close.
var ErrClosed = errors.New("qdrant index is closed")

// Options configure Open; the zero value talks plain gRPC to the "cortex"
// collection and takes the vector size from the first upsert.
type Options struct {
	// Collection is the Qdrant collection name; DefaultCollection when empty.
	Collection string
	// APIKey authenticates to Qdrant; never logged or put in errors.
	APIKey string
	// TLS encrypts the connection; also implied by an https:// address.
	TLS bool
	// VectorSize, when set, creates the collection at Open and rejects
	// vectors of any other size; 0 means the first upsert decides.
	VectorSize int
}

// Index implements cortex.VectorIndex on one Qdrant collection.
type Index struct {
	client     *qc.Client
	collection string

	mu     sync.Mutex
	dim    int // the collection's vector size once known, else 0
	closed bool
}

var _ cortex.VectorIndex = (*Index)(nil)

// Open connects to Qdrant's gRPC endpoint at addr ("host", "host:port" or
// "http(s)://host:port") and checks that it answers.
func Open(ctx context.Context, addr string, opts Options) (*Index, error) {
	host, port, useTLS, err := parseAddr(addr)
	if err != nil {
		return nil, err
	}
	if opts.Collection == "" {
		opts.Collection = DefaultCollection
	}
	if opts.VectorSize < 0 {
		return nil, fmt.Errorf("qdrant: vector size %d is negative", opts.VectorSize)
	}
	client, err := qc.NewClient(&qc.Config{
		Host:                   host,
		Port:                   port,
		APIKey:                 opts.APIKey,
		UseTLS:                 useTLS || opts.TLS,
		SkipCompatibilityCheck: true, // it only logs; the health check below fails fast instead
	})
	if err != nil {
		return nil, fmt.Errorf("qdrant: client for %s:%d: %w", host, port, err)
	}
	if _, err := client.HealthCheck(ctx); err != nil {
		client.Close()
		return nil, fmt.Errorf("qdrant: health check %s:%d: %w", host, port, err)
	}
	ix := &Index{client: client, collection: opts.Collection}
	if opts.VectorSize > 0 {
		if err := ix.ensureLocked(ctx, opts.VectorSize, false); err != nil {
			client.Close()
			return nil, err
		}
	}
	return ix, nil
}

func parseAddr(addr string) (host string, port int, useTLS bool, err error) {
	hostport := addr
	if strings.Contains(addr, "://") {
		u, err := url.Parse(addr)
		if err != nil {
			return "", 0, false, fmt.Errorf("qdrant: address %q is not a URL", addr)
		}
		switch u.Scheme {
		case "http", "grpc":
		case "https", "grpcs":
			useTLS = true
		default:
			return "", 0, false, fmt.Errorf("qdrant: address scheme %q: want http or https", u.Scheme)
		}
		hostport = u.Host
	}
	if hostport == "" {
		return "", 0, false, errors.New("qdrant: address is empty")
	}
	h, p, err := net.SplitHostPort(hostport)
	if err != nil {
		// No port given: Qdrant's gRPC default.
		return strings.Trim(hostport, "[]"), DefaultPort, useTLS, nil
	}
	port, err = strconv.Atoi(p)
	if err != nil || port <= 0 || port > 65535 {
		return "", 0, false, fmt.Errorf("qdrant: address %q has a bad port", addr)
	}
	return h, port, useTLS, nil
}

// Close ends the connection; later calls fail with ErrClosed.
func (ix *Index) Close() error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.closed {
		return nil
	}
	ix.closed = true
	return ix.client.Close()
}

// UpsertVectors writes one point per item, replacing the point of the same
// (collection, id); the first call creates the Qdrant collection.
func (ix *Index) UpsertVectors(ctx context.Context, items []cortex.VectorItem) error {
	if len(items) == 0 {
		return ix.open()
	}
	dim := len(items[0].Vector)
	points := make([]*qc.PointStruct, len(items))
	for i, it := range items {
		if err := validItem(it, dim); err != nil {
			return fmt.Errorf("upsert vector %d: %w", i, err)
		}
		points[i] = &qc.PointStruct{
			Id:      qc.NewIDUUID(PointID(it.Collection, it.ID)),
			Vectors: qc.NewVectorsDense(it.Vector),
			Payload: map[string]*qc.Value{
				keyCollection: qc.NewValueString(it.Collection),
				keyID:         qc.NewValueString(it.ID),
				keyCluster:    qc.NewValueString(it.Cluster),
			},
		}
	}
	if err := ix.ensureLocked(ctx, dim, false); err != nil {
		return err
	}
	for start := 0; start < len(points); start += upsertChunk {
		chunk := points[start:min(start+upsertChunk, len(points))]
		req := &qc.UpsertPoints{CollectionName: ix.collection, Wait: qc.PtrOf(true), Points: chunk}
		_, err := ix.client.Upsert(ctx, req)
		if status.Code(err) == codes.NotFound {
			// Someone deleted the collection since we last looked.
			if err = ix.ensureLocked(ctx, dim, true); err == nil {
				_, err = ix.client.Upsert(ctx, req)
			}
		}
		if err != nil {
			return fmt.Errorf("qdrant: upsert %d vectors into %s: %w", len(chunk), ix.collection, err)
		}
	}
	return nil
}

// Search returns the k nearest points by cosine similarity within the
// filter; before the first upsert there is nothing to find.
func (ix *Index) Search(ctx context.Context, vector []float32, f cortex.Filter, k int) ([]cortex.Scored, error) {
	if k < 0 {
		return nil, fmt.Errorf("vector search: k must not be negative, got %d", k)
	}
	if err := validVector(vector); err != nil {
		return nil, fmt.Errorf("vector search: %w", err)
	}
	ix.mu.Lock()
	if ix.closed {
		ix.mu.Unlock()
		return nil, ErrClosed
	}
	dim, err := ix.knownDim(ctx)
	ix.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if dim == 0 || k == 0 {
		return nil, nil
	}
	if dim != len(vector) {
		return nil, fmt.Errorf("vector search: query has %d dimensions, collection %s holds %d", len(vector), ix.collection, dim)
	}
	req := &qc.QueryPoints{
		CollectionName: ix.collection,
		Query:          qc.NewQueryDense(vector),
		Limit:          qc.PtrOf(uint64(min(k, maxK))),
		WithPayload:    qc.NewWithPayloadInclude(keyCollection, keyID),
	}
	var must []*qc.Condition
	if len(f.Collections) > 0 {
		must = append(must, qc.NewMatchKeywords(keyCollection, f.Collections...))
	}
	if f.Cluster != "" {
		must = append(must, qc.NewMatchKeyword(keyCluster, f.Cluster))
	}
	if len(must) > 0 {
		req.Filter = &qc.Filter{Must: must}
	}
	res, err := ix.client.Query(ctx, req)
	if status.Code(err) == codes.NotFound {
		ix.mu.Lock()
		ix.dim = 0
		ix.mu.Unlock()
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("qdrant: search %s: %w", ix.collection, err)
	}
	out := make([]cortex.Scored, 0, len(res))
	for _, p := range res {
		coll := p.GetPayload()[keyCollection].GetStringValue()
		id := p.GetPayload()[keyID].GetStringValue()
		if coll == "" || id == "" {
			continue // a point some other writer put in the collection
		}
		out = append(out, cortex.Scored{Collection: coll, ID: id, Score: max(-1, min(1, float64(p.GetScore())))})
	}
	return out, nil
}

// PointID is the Qdrant point id of a document: a name-based UUID of its
// collection and id.
func PointID(collection, id string) string {
	return uuid.NewSHA1(pointNamespace, []byte(collection+"\x00"+id)).String()
}

// ensureLocked runs ensure under mu; forget drops what is known about the
// collection first.
func (ix *Index) ensureLocked(ctx context.Context, dim int, forget bool) error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.closed {
		return ErrClosed
	}
	if forget {
		ix.dim = 0
	}
	return ix.ensure(ctx, dim)
}

func (ix *Index) open() error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.closed {
		return ErrClosed
	}
	return nil
}

// knownDim returns the collection's vector size, or 0 when it does not exist
// yet. The caller holds mu.
func (ix *Index) knownDim(ctx context.Context) (int, error) {
	if ix.dim != 0 {
		return ix.dim, nil
	}
	info, err := ix.client.GetCollectionInfo(ctx, ix.collection)
	if status.Code(err) == codes.NotFound {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("qdrant: collection %s: %w", ix.collection, err)
	}
	dim, err := ix.checkParams(info)
	if err != nil {
		return 0, err
	}
	ix.dim = dim
	return dim, nil
}

// ensure makes sure the collection exists with vectors of size dim, creating
// it with cosine distance if needed. The caller holds mu.
func (ix *Index) ensure(ctx context.Context, dim int) error {
	have, err := ix.knownDim(ctx)
	if err != nil {
		return err
	}
	if have == 0 {
		err := ix.client.CreateCollection(ctx, &qc.CreateCollection{
			CollectionName: ix.collection,
			VectorsConfig:  qc.NewVectorsConfig(&qc.VectorParams{Size: uint64(dim), Distance: qc.Distance_Cosine}),
		})
		// Another replica may have won the race to create it.
		if err != nil && status.Code(err) != codes.AlreadyExists {
			return fmt.Errorf("qdrant: create collection %s: %w", ix.collection, err)
		}
		if err == nil {
			for _, field := range []string{keyCollection, keyCluster} {
				if _, err := ix.client.CreateFieldIndex(ctx, &qc.CreateFieldIndexCollection{
					CollectionName: ix.collection,
					FieldName:      field,
					FieldType:      qc.FieldType_FieldTypeKeyword.Enum(),
					Wait:           qc.PtrOf(true),
				}); err != nil {
					return fmt.Errorf("qdrant: index payload %s of %s: %w", field, ix.collection, err)
				}
			}
		}
		if have, err = ix.knownDim(ctx); err != nil {
			return err
		}
	}
	if have != dim {
		return fmt.Errorf("qdrant: vectors have %d dimensions, collection %s holds %d (was the embedder changed?)", dim, ix.collection, have)
	}
	return nil
}

func (ix *Index) checkParams(info *qc.CollectionInfo) (int, error) {
	params := info.GetConfig().GetParams().GetVectorsConfig().GetParams()
	if params == nil {
		return 0, fmt.Errorf("qdrant: collection %s has named vectors; Cortex needs one unnamed vector", ix.collection)
	}
	if params.GetDistance() != qc.Distance_Cosine {
		return 0, fmt.Errorf("qdrant: collection %s uses %s distance; Cortex needs Cosine", ix.collection, params.GetDistance())
	}
	if params.GetSize() == 0 {
		return 0, fmt.Errorf("qdrant: collection %s reports vector size 0", ix.collection)
	}
	return int(params.GetSize()), nil
}

func validItem(it cortex.VectorItem, dim int) error {
	if it.Collection == "" {
		return errors.New("collection is empty")
	}
	if it.ID == "" {
		return fmt.Errorf("%s: id is empty", it.Collection)
	}
	if len(it.Vector) != dim {
		return fmt.Errorf("%s/%s: %d dimensions, the batch has %d", it.Collection, it.ID, len(it.Vector), dim)
	}
	if err := validVector(it.Vector); err != nil {
		return fmt.Errorf("%s/%s: %w", it.Collection, it.ID, err)
	}
	return nil
}

// validVector refuses what cosine similarity cannot score.
func validVector(v []float32) error {
	if len(v) == 0 {
		return errors.New("vector is empty")
	}
	zero := true
	for i, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return fmt.Errorf("vector element %d is not a finite number", i)
		}
		if x != 0 {
			zero = false
		}
	}
	if zero {
		return errors.New("vector is all zeros")
	}
	return nil
}
