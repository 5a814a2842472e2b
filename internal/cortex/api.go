// Package cortex is the cluster's memory: it stores Warning events, past
// conversations and their outcomes, GitOps manifests and runbooks, answers
// questions with hybrid retrieval, and scores proposed writes against that
// history. The same types travel over HTTP (Client, Handler) and in process
// (Service), so shepherd uses either without knowing which.
package cortex

import (
	"context"
	"time"
)

// Collections are the fixed document collections Cortex serves.
const (
	CollectionEvents   = "cluster_events"
	CollectionChat     = "chat_history"
	CollectionManifest = "manifests"
	CollectionDocs     = "documentation"
)

// Collections lists every valid collection name.
var Collections = []string{CollectionEvents, CollectionChat, CollectionManifest, CollectionDocs}

// Document is one unit of memory. Metadata is free-form string pairs; the
// keys "cluster", "kind" (event, outcome, manifest, runbook, conversation)
// and "outcome" (succeeded, failed, incident) have meaning to Cortex.
type Document struct {
	ID         string            `json:"id"`
	Collection string            `json:"collection,omitempty"`
	Text       string            `json:"text"`
	Metadata   map[string]string `json:"metadata,omitempty"`
	Cluster    string            `json:"cluster,omitempty"`
	CreatedAt  time.Time         `json:"created_at,omitzero"`
	UpdatedAt  time.Time         `json:"updated_at,omitzero"`
}

// IngestRequest upserts documents into one collection, idempotent by id.
type IngestRequest struct {
	Collection string     `json:"collection"`
	Documents  []Document `json:"documents"`
}

// IngestResponse counts what an ingest did.
type IngestResponse struct {
	Upserted int `json:"upserted"`
}

// QueryRequest asks for the documents most relevant to a question.
type QueryRequest struct {
	Query       string   `json:"query"`
	TopK        int      `json:"top_k,omitempty"`
	Collections []string `json:"collections,omitempty"`
	Cluster     string   `json:"cluster,omitempty"`
}

// Hit is one ranked document.
type Hit struct {
	ID         string            `json:"id"`
	Collection string            `json:"collection"`
	Score      float64           `json:"score"`
	Text       string            `json:"text"`
	Source     string            `json:"source,omitempty"`
	Cluster    string            `json:"cluster,omitempty"`
	Metadata   map[string]string `json:"metadata,omitempty"`
	UpdatedAt  time.Time         `json:"updated_at,omitzero"`
	// Matched says which retrievers found the hit and at what rank
	// ("bm25#1", "dense#3", "rerank").
	Matched []string `json:"matched,omitempty"`
}

// QueryResponse holds ranked hits and MergedContext, one pre-formatted block:
// verified solutions first, then matching events, then past outcomes.
type QueryResponse struct {
	Hits          []Hit  `json:"hits"`
	MergedContext string `json:"merged_context"`
	// Warnings name a degraded answer (e.g. the embedder was down and only
	// keyword search ran).
	Warnings []string `json:"warnings,omitempty"`
}

// Recommendation is what a risk assessment advises.
type Recommendation string

const (
	Auto   Recommendation = "auto"
	Review Recommendation = "review"
	Reject Recommendation = "reject"
)

// RiskRequest describes a proposed action: free text plus, when known, the
// exact tool call.
type RiskRequest struct {
	Action    string         `json:"action"`
	Tool      string         `json:"tool,omitempty"`
	Arguments map[string]any `json:"arguments,omitempty"`
	Cluster   string         `json:"cluster,omitempty"`
}

// Incident is a past event or outcome that influenced an assessment.
type Incident struct {
	ID         string    `json:"id"`
	When       time.Time `json:"when"`
	What       string    `json:"what"`
	Outcome    string    `json:"outcome,omitempty"`
	Similarity float64   `json:"similarity"`
}

// RiskResponse is an explainable, deterministic score for one action.
type RiskResponse struct {
	Score            float64        `json:"score"`
	Recommendation   Recommendation `json:"recommendation"`
	Class            string         `json:"class"`
	Reasoning        string         `json:"reasoning"`
	SimilarIncidents []Incident     `json:"similar_incidents"`
}

// Outcome values for recorded actions.
const (
	OutcomeSucceeded = "succeeded"
	OutcomeFailed    = "failed"
	OutcomeIncident  = "incident"
)

// OutcomeRecord is what happened when an action ran; it lands in
// chat_history so the next assessment of a similar action sees it.
type OutcomeRecord struct {
	ID        string         `json:"id,omitempty"`
	Action    string         `json:"action"`
	Tool      string         `json:"tool,omitempty"`
	Arguments map[string]any `json:"arguments,omitempty"`
	Outcome   string         `json:"outcome"`
	Details   string         `json:"details,omitempty"`
	Cluster   string         `json:"cluster,omitempty"`
	When      time.Time      `json:"when,omitzero"`
}

// Memory is what shepherd needs from Cortex. Both the in-process Service and
// the HTTP Client implement it.
type Memory interface {
	Ingest(ctx context.Context, req IngestRequest) (IngestResponse, error)
	Query(ctx context.Context, req QueryRequest) (QueryResponse, error)
	Risk(ctx context.Context, req RiskRequest) (RiskResponse, error)
	RecordOutcome(ctx context.Context, rec OutcomeRecord) error
}
