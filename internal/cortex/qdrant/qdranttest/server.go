// Package qdranttest runs an in-process stand-in for Qdrant's gRPC API on
// 127.0.0.1, because no Qdrant server can run where the tests run. It
// implements the calls Cortex makes, with Qdrant's answers and error codes
// (missing collection → NotFound, wrong vector size → InvalidArgument,
// existing collection → AlreadyExists), and refuses the rest as
// Unimplemented rather than guessing.
package qdranttest

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"net"
	"slices"
	"sync"
	"testing"

	"github.com/google/uuid"
	qc "github.com/qdrant/go-client/qdrant"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Version is what HealthCheck reports; it matches the client module.
const Version = "1.17.1"

// Server is a running stand-in.
type Server struct {
	grpc   *grpc.Server
	lis    net.Listener
	apiKey string

	mu          sync.Mutex
	collections map[string]*collection
	calls       map[string]int
}

type collection struct {
	size    uint64
	dist    qc.Distance
	points  map[string]*point // by canonical point id
	indexed map[string]qc.FieldType
}

type point struct {
	id      *qc.PointId
	vector  []float32 // normalised for Cosine, as Qdrant stores it
	payload map[string]*qc.Value
}

// Option changes how the stand-in behaves.
type Option func(*Server)

// WithAPIKey makes every call require the api-key header, as Qdrant does
// when its service.api_key is set.
func WithAPIKey(key string) Option { return func(s *Server) { s.apiKey = key } }

// Start runs a stand-in on a random loopback port until Close.
func Start(opts ...Option) (*Server, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("qdranttest: listen: %w", err)
	}
	s := &Server{lis: lis, collections: map[string]*collection{}, calls: map[string]int{}}
	for _, o := range opts {
		o(s)
	}
	s.grpc = grpc.NewServer(grpc.UnaryInterceptor(s.intercept))
	qc.RegisterQdrantServer(s.grpc, qdrantService{})
	qc.RegisterCollectionsServer(s.grpc, collectionsService{s: s})
	qc.RegisterPointsServer(s.grpc, pointsService{s: s})
	go func() { _ = s.grpc.Serve(lis) }()
	return s, nil
}

// New starts a stand-in that stops when the test ends.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s, err := Start(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// Addr is the host:port of the gRPC endpoint.
func (s *Server) Addr() string { return s.lis.Addr().String() }

// Close stops the server at once.
func (s *Server) Close() { s.grpc.Stop() }

// Calls reports how often a gRPC method (e.g. "/qdrant.Points/Upsert") was
// called, so tests can assert what went over the wire.
func (s *Server) Calls(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method]
}

// Points returns the number of points in a collection, or -1 if it does not
// exist.
func (s *Server) Points(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.collections[name]
	if !ok {
		return -1
	}
	return len(c.points)
}

func (s *Server) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	s.mu.Lock()
	s.calls[info.FullMethod]++
	s.mu.Unlock()
	if s.apiKey != "" && info.FullMethod != "/qdrant.Qdrant/HealthCheck" {
		md, _ := metadata.FromIncomingContext(ctx)
		if got := md.Get("api-key"); len(got) != 1 || got[0] != s.apiKey {
			return nil, status.Error(codes.PermissionDenied, "Invalid api-key")
		}
	}
	return h(ctx, req)
}

func notFound(name string) error {
	return status.Errorf(codes.NotFound, "Not found: Collection `%s` doesn't exist!", name)
}

// lookup returns the collection; the caller holds mu.
func (s *Server) lookup(name string) (*collection, error) {
	c, ok := s.collections[name]
	if !ok {
		return nil, notFound(name)
	}
	return c, nil
}

type qdrantService struct{ qc.UnimplementedQdrantServer }

func (qdrantService) HealthCheck(context.Context, *qc.HealthCheckRequest) (*qc.HealthCheckReply, error) {
	return &qc.HealthCheckReply{Title: "qdrant - vector search engine", Version: Version}, nil
}

type collectionsService struct {
	qc.UnimplementedCollectionsServer
	s *Server
}

func (cs collectionsService) CollectionExists(_ context.Context, r *qc.CollectionExistsRequest) (*qc.CollectionExistsResponse, error) {
	cs.s.mu.Lock()
	defer cs.s.mu.Unlock()
	_, ok := cs.s.collections[r.GetCollectionName()]
	return &qc.CollectionExistsResponse{Result: &qc.CollectionExists{Exists: ok}}, nil
}

func (cs collectionsService) Get(_ context.Context, r *qc.GetCollectionInfoRequest) (*qc.GetCollectionInfoResponse, error) {
	cs.s.mu.Lock()
	defer cs.s.mu.Unlock()
	c, err := cs.s.lookup(r.GetCollectionName())
	if err != nil {
		return nil, err
	}
	schema := map[string]*qc.PayloadSchemaInfo{}
	for f, t := range c.indexed {
		schema[f] = &qc.PayloadSchemaInfo{DataType: qc.PayloadSchemaType(t + 1), Points: qc.PtrOf(uint64(len(c.points)))}
	}
	n := uint64(len(c.points))
	return &qc.GetCollectionInfoResponse{Result: &qc.CollectionInfo{
		Status:        qc.CollectionStatus_Green,
		SegmentsCount: 1,
		PointsCount:   &n,
		Config: &qc.CollectionConfig{Params: &qc.CollectionParams{
			ShardNumber:   1,
			VectorsConfig: qc.NewVectorsConfig(&qc.VectorParams{Size: c.size, Distance: c.dist}),
		}},
		PayloadSchema: schema,
	}}, nil
}

func (cs collectionsService) List(context.Context, *qc.ListCollectionsRequest) (*qc.ListCollectionsResponse, error) {
	cs.s.mu.Lock()
	defer cs.s.mu.Unlock()
	var out []*qc.CollectionDescription
	for name := range cs.s.collections {
		out = append(out, &qc.CollectionDescription{Name: name})
	}
	slices.SortFunc(out, func(a, b *qc.CollectionDescription) int { return cmp.Compare(a.Name, b.Name) })
	return &qc.ListCollectionsResponse{Collections: out}, nil
}

func (cs collectionsService) Create(_ context.Context, r *qc.CreateCollection) (*qc.CollectionOperationResponse, error) {
	name := r.GetCollectionName()
	if name == "" || len(name) > 255 || slicesContainsAny(name, `<>:"/\|?*`) {
		return nil, status.Errorf(codes.InvalidArgument, "Validation error in body: [collection_name: invalid collection name %q]", name)
	}
	if r.GetVectorsConfig().GetParamsMap() != nil {
		return nil, status.Error(codes.Unimplemented, "qdranttest: named vectors are not supported by the stand-in")
	}
	p := r.GetVectorsConfig().GetParams()
	if p == nil {
		return nil, status.Error(codes.Unimplemented, "qdranttest: collections without a dense vector are not supported by the stand-in")
	}
	if p.GetSize() < 1 || p.GetSize() > 65536 {
		return nil, status.Errorf(codes.InvalidArgument, "Validation error in body: [vectors_config.params.size: value %d invalid, must be from 1 to 65536]", p.GetSize())
	}
	if p.GetDistance() == qc.Distance_UnknownDistance {
		return nil, status.Error(codes.InvalidArgument, "Wrong input: Unknown distance")
	}
	cs.s.mu.Lock()
	defer cs.s.mu.Unlock()
	if _, ok := cs.s.collections[name]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "Wrong input: Collection `%s` already exists!", name)
	}
	cs.s.collections[name] = &collection{size: p.GetSize(), dist: p.GetDistance(), points: map[string]*point{}, indexed: map[string]qc.FieldType{}}
	return &qc.CollectionOperationResponse{Result: true}, nil
}

func (cs collectionsService) Delete(_ context.Context, r *qc.DeleteCollection) (*qc.CollectionOperationResponse, error) {
	cs.s.mu.Lock()
	defer cs.s.mu.Unlock()
	_, ok := cs.s.collections[r.GetCollectionName()]
	delete(cs.s.collections, r.GetCollectionName())
	return &qc.CollectionOperationResponse{Result: ok}, nil
}

type pointsService struct {
	qc.UnimplementedPointsServer
	s *Server
}

func (ps pointsService) Upsert(_ context.Context, r *qc.UpsertPoints) (*qc.PointsOperationResponse, error) {
	if r.GetUpdateFilter() != nil || r.GetShardKeySelector() != nil {
		return nil, status.Error(codes.Unimplemented, "qdranttest: conditional or sharded upserts are not supported by the stand-in")
	}
	ps.s.mu.Lock()
	defer ps.s.mu.Unlock()
	c, err := ps.s.lookup(r.GetCollectionName())
	if err != nil {
		return nil, err
	}
	// Validate every point before writing any, as Qdrant rejects the whole
	// request on one bad point.
	staged := make([]*point, 0, len(r.GetPoints()))
	for _, p := range r.GetPoints() {
		_, id, err := pointKey(p.GetId())
		if err != nil {
			return nil, err
		}
		vec, err := denseOf(p.GetVectors())
		if err != nil {
			return nil, err
		}
		if uint64(len(vec)) != c.size {
			return nil, status.Errorf(codes.InvalidArgument, "Wrong input: Vector dimension error: expected dim: %d, got %d", c.size, len(vec))
		}
		if c.dist == qc.Distance_Cosine {
			vec = normalise(vec)
		}
		staged = append(staged, &point{id: id, vector: vec, payload: p.GetPayload()})
	}
	for _, p := range staged {
		key, _, _ := pointKey(p.id)
		c.points[key] = p
	}
	return &qc.PointsOperationResponse{Result: &qc.UpdateResult{OperationId: qc.PtrOf(uint64(len(c.points))), Status: qc.UpdateStatus_Completed}}, nil
}

func (ps pointsService) CreateFieldIndex(_ context.Context, r *qc.CreateFieldIndexCollection) (*qc.PointsOperationResponse, error) {
	ps.s.mu.Lock()
	defer ps.s.mu.Unlock()
	c, err := ps.s.lookup(r.GetCollectionName())
	if err != nil {
		return nil, err
	}
	if r.GetFieldName() == "" {
		return nil, status.Error(codes.InvalidArgument, "Validation error in body: [field_name: must not be empty]")
	}
	if r.FieldType == nil {
		return nil, status.Error(codes.InvalidArgument, "Wrong input: field_type is required")
	}
	c.indexed[r.GetFieldName()] = r.GetFieldType()
	return &qc.PointsOperationResponse{Result: &qc.UpdateResult{Status: qc.UpdateStatus_Completed}}, nil
}

func (ps pointsService) Query(_ context.Context, r *qc.QueryPoints) (*qc.QueryResponse, error) {
	if len(r.GetPrefetch()) > 0 || r.Using != nil || r.LookupFrom != nil {
		return nil, status.Error(codes.Unimplemented, "qdranttest: prefetch, named vectors and lookup are not supported by the stand-in")
	}
	near := r.GetQuery().GetNearest()
	if near == nil || near.GetDense() == nil {
		return nil, status.Error(codes.Unimplemented, "qdranttest: only nearest-neighbour queries with a dense vector are supported by the stand-in")
	}
	ps.s.mu.Lock()
	defer ps.s.mu.Unlock()
	c, err := ps.s.lookup(r.GetCollectionName())
	if err != nil {
		return nil, err
	}
	q := near.GetDense().GetData()
	if uint64(len(q)) != c.size {
		return nil, status.Errorf(codes.InvalidArgument, "Wrong input: Vector dimension error: expected dim: %d, got %d", c.size, len(q))
	}
	if c.dist != qc.Distance_Cosine && c.dist != qc.Distance_Dot {
		return nil, status.Error(codes.Unimplemented, "qdranttest: only Cosine and Dot distance are supported by the stand-in")
	}
	if c.dist == qc.Distance_Cosine {
		q = normalise(q)
	}
	if err := checkFilter(r.GetFilter()); err != nil {
		return nil, err
	}
	limit := uint64(10)
	if r.Limit != nil {
		limit = r.GetLimit()
	}
	if limit == 0 {
		return nil, status.Error(codes.InvalidArgument, "Validation error in body: [limit: value 0 invalid, must be 1 or more]")
	}
	var hits []*qc.ScoredPoint
	for _, p := range c.points {
		ok, err := matches(r.GetFilter(), p.payload)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		var dot float64
		for i := range q {
			dot += float64(q[i]) * float64(p.vector[i])
		}
		if r.ScoreThreshold != nil && float32(dot) < r.GetScoreThreshold() {
			continue
		}
		hits = append(hits, &qc.ScoredPoint{Id: p.id, Score: float32(dot), Payload: selectPayload(r.GetWithPayload(), p.payload), Version: 1})
	}
	slices.SortFunc(hits, func(a, b *qc.ScoredPoint) int {
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		return cmp.Compare(a.GetId().String(), b.GetId().String())
	})
	off := min(r.GetOffset(), uint64(len(hits)))
	hits = hits[off:]
	if uint64(len(hits)) > limit {
		hits = hits[:limit]
	}
	return &qc.QueryResponse{Result: hits}, nil
}

func (ps pointsService) Get(_ context.Context, r *qc.GetPoints) (*qc.GetResponse, error) {
	ps.s.mu.Lock()
	defer ps.s.mu.Unlock()
	c, err := ps.s.lookup(r.GetCollectionName())
	if err != nil {
		return nil, err
	}
	var out []*qc.RetrievedPoint
	for _, id := range r.GetIds() {
		key, _, err := pointKey(id)
		if err != nil {
			return nil, err
		}
		if p, ok := c.points[key]; ok {
			out = append(out, &qc.RetrievedPoint{Id: p.id, Payload: selectPayload(r.GetWithPayload(), p.payload)})
		}
	}
	return &qc.GetResponse{Result: out}, nil
}

func (ps pointsService) Count(_ context.Context, r *qc.CountPoints) (*qc.CountResponse, error) {
	ps.s.mu.Lock()
	defer ps.s.mu.Unlock()
	c, err := ps.s.lookup(r.GetCollectionName())
	if err != nil {
		return nil, err
	}
	if err := checkFilter(r.GetFilter()); err != nil {
		return nil, err
	}
	var n uint64
	for _, p := range c.points {
		ok, err := matches(r.GetFilter(), p.payload)
		if err != nil {
			return nil, err
		}
		if ok {
			n++
		}
	}
	return &qc.CountResponse{Result: &qc.CountResult{Count: n}}, nil
}

// pointKey validates a point id like Qdrant (an unsigned integer or a UUID)
// and returns a canonical key for it.
func pointKey(id *qc.PointId) (string, *qc.PointId, error) {
	switch v := id.GetPointIdOptions().(type) {
	case *qc.PointId_Num:
		return fmt.Sprintf("n:%d", v.Num), id, nil
	case *qc.PointId_Uuid:
		u, err := uuid.Parse(v.Uuid)
		if err != nil {
			return "", nil, status.Errorf(codes.InvalidArgument, "Unable to parse UUID: %s", v.Uuid)
		}
		return "u:" + u.String(), qc.NewIDUUID(u.String()), nil
	default:
		return "", nil, status.Error(codes.InvalidArgument, "Wrong input: point id is missing")
	}
}

func denseOf(v *qc.Vectors) ([]float32, error) {
	vec := v.GetVector()
	if v.GetVectors() != nil {
		return nil, status.Error(codes.InvalidArgument, "Wrong input: Not existing vector name error: the collection has only an unnamed vector")
	}
	if vec == nil {
		return nil, status.Error(codes.InvalidArgument, "Wrong input: point has no vector")
	}
	if d := vec.GetDense(); d != nil {
		return d.GetData(), nil
	}
	if vec.GetSparse() != nil || vec.GetMultiDense() != nil || vec.GetDocument() != nil || vec.GetImage() != nil || vec.GetObject() != nil {
		return nil, status.Error(codes.Unimplemented, "qdranttest: only dense vectors are supported by the stand-in")
	}
	// Older clients send the values in the deprecated data field.
	//lint:ignore SA1019 older clients send the values in this field
	return vec.GetData(), nil
}

func normalise(v []float32) []float32 {
	var sum float64
	for _, x := range v {
		sum += float64(x) * float64(x)
	}
	out := make([]float32, len(v))
	if sum == 0 {
		return out
	}
	n := math.Sqrt(sum)
	for i, x := range v {
		out[i] = float32(float64(x) / n)
	}
	return out
}

// matches evaluates a filter of keyword match conditions, nested filters and
// min_should-free should/must/must_not lists; anything else is refused.
func matches(f *qc.Filter, payload map[string]*qc.Value) (bool, error) {
	if f == nil {
		return true, nil
	}
	if f.MinShould != nil {
		return false, status.Error(codes.Unimplemented, "qdranttest: min_should is not supported by the stand-in")
	}
	for _, c := range f.GetMust() {
		ok, err := cond(c, payload)
		if err != nil || !ok {
			return false, err
		}
	}
	for _, c := range f.GetMustNot() {
		ok, err := cond(c, payload)
		if err != nil || ok {
			return false, err
		}
	}
	if len(f.GetShould()) == 0 {
		return true, nil
	}
	for _, c := range f.GetShould() {
		ok, err := cond(c, payload)
		if err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

// checkFilter refuses a filter the stand-in cannot evaluate even when there
// are no points to evaluate it on, so an unsupported filter never passes.
func checkFilter(f *qc.Filter) error {
	if f == nil {
		return nil
	}
	if f.MinShould != nil {
		return status.Error(codes.Unimplemented, "qdranttest: min_should is not supported by the stand-in")
	}
	for _, list := range [][]*qc.Condition{f.GetMust(), f.GetMustNot(), f.GetShould()} {
		for _, c := range list {
			if _, err := cond(c, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

func cond(c *qc.Condition, payload map[string]*qc.Value) (bool, error) {
	if nf := c.GetFilter(); nf != nil {
		if err := checkFilter(nf); err != nil {
			return false, err
		}
		return matches(nf, payload)
	}
	fc := c.GetField()
	if fc == nil || fc.GetMatch() == nil {
		return false, status.Error(codes.Unimplemented, "qdranttest: only field match conditions are supported by the stand-in")
	}
	var want []string
	switch m := fc.GetMatch().GetMatchValue().(type) {
	case *qc.Match_Keyword:
		want = []string{m.Keyword}
	case *qc.Match_Keywords:
		want = m.Keywords.GetStrings()
	default:
		return false, status.Error(codes.Unimplemented, "qdranttest: only keyword matches are supported by the stand-in")
	}
	v, ok := payload[fc.GetKey()]
	if !ok {
		return false, nil
	}
	// A keyword matches a string value, or any string in a list value.
	vals := []*qc.Value{v}
	if l := v.GetListValue(); l != nil {
		vals = l.GetValues()
	}
	for _, x := range vals {
		if s, ok := x.GetKind().(*qc.Value_StringValue); ok && slices.Contains(want, s.StringValue) {
			return true, nil
		}
	}
	return false, nil
}

func selectPayload(sel *qc.WithPayloadSelector, payload map[string]*qc.Value) map[string]*qc.Value {
	if sel == nil {
		return nil
	}
	switch o := sel.GetSelectorOptions().(type) {
	case *qc.WithPayloadSelector_Enable:
		if o.Enable {
			return payload
		}
		return nil
	case *qc.WithPayloadSelector_Include:
		out := map[string]*qc.Value{}
		for _, f := range o.Include.GetFields() {
			if v, ok := payload[f]; ok {
				out[f] = v
			}
		}
		return out
	case *qc.WithPayloadSelector_Exclude:
		out := map[string]*qc.Value{}
		for k, v := range payload {
			if !slices.Contains(o.Exclude.GetFields(), k) {
				out[k] = v
			}
		}
		return out
	}
	return nil
}

func slicesContainsAny(s, chars string) bool {
	for _, r := range chars {
		if slices.Contains([]rune(s), r) {
			return true
		}
	}
	return false
}
