package qdranttest

import (
	"context"
	"net"
	"testing"

	qc "github.com/qdrant/go-client/qdrant"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The stand-in must answer errors with the codes a real Qdrant uses, or the
// code under test learns the wrong lessons.
func TestErrorsFollowQdrant(t *testing.T) {
	srv := New(t)
	port := srv.lis.Addr().(*net.TCPAddr).Port
	c, err := qc.NewClient(&qc.Config{Host: "127.0.0.1", Port: port, SkipCompatibilityCheck: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	if _, err := c.GetCollectionInfo(ctx, "nope"); status.Code(err) != codes.NotFound {
		t.Fatalf("missing collection: %v", err)
	}
	_, err = c.Query(ctx, &qc.QueryPoints{CollectionName: "nope", Query: qc.NewQueryDense([]float32{1})})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("query missing collection: %v", err)
	}
	create := &qc.CreateCollection{CollectionName: "c", VectorsConfig: qc.NewVectorsConfig(&qc.VectorParams{Size: 2, Distance: qc.Distance_Cosine})}
	if err := c.CreateCollection(ctx, create); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateCollection(ctx, create); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("second create: %v", err)
	}
	if err := c.CreateCollection(ctx, &qc.CreateCollection{CollectionName: "z", VectorsConfig: qc.NewVectorsConfig(&qc.VectorParams{Size: 0, Distance: qc.Distance_Cosine})}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("size 0: %v", err)
	}
	_, err = c.Upsert(ctx, &qc.UpsertPoints{CollectionName: "c", Points: []*qc.PointStruct{
		{Id: qc.NewIDNum(1), Vectors: qc.NewVectorsDense([]float32{1, 0})},
		{Id: qc.NewIDNum(2), Vectors: qc.NewVectorsDense([]float32{1, 0, 0})},
	}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("wrong dimension: %v", err)
	}
	if srv.Points("c") != 0 {
		t.Fatal("a rejected upsert wrote points")
	}
	_, err = c.Upsert(ctx, &qc.UpsertPoints{CollectionName: "c", Points: []*qc.PointStruct{{Id: qc.NewID("not-a-uuid"), Vectors: qc.NewVectorsDense([]float32{1, 0})}}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad uuid: %v", err)
	}
	_, err = c.Query(ctx, &qc.QueryPoints{CollectionName: "c", Query: qc.NewQueryDense([]float32{1, 0, 0})})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("query wrong dimension: %v", err)
	}
	_, err = c.Query(ctx, &qc.QueryPoints{CollectionName: "c", Query: qc.NewQueryDense([]float32{1, 0}),
		Filter: &qc.Filter{Must: []*qc.Condition{qc.NewRange("n", &qc.Range{Gt: qc.PtrOf(1.0)})}}})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("unsupported filter must be refused, not ignored: %v", err)
	}
	if got := srv.Calls("/qdrant.Points/Query"); got != 3 {
		t.Fatalf("Calls = %d", got)
	}
}
