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

// Report limits: how many problems and failed outcomes a report lists by
// default, and at most.
const (
	DefaultReportTop = 20
	MaxReportTop     = 100
)

// ReportRequest asks what one cluster went through since a time: the
// promotion report of a feature cluster.
type ReportRequest struct {
	Cluster string `json:"cluster"`
	// Since starts the window (default: 7 days before now).
	Since time.Time `json:"since,omitzero"`
	// Top caps the problems and the failed outcomes listed (default 20,
	// at most 100); counts are never capped by it.
	Top int `json:"top,omitempty"`
}

// Problem is one Warning event (all events of one object and reason,
// folded) seen in the window.
type Problem struct {
	ID        string    `json:"id"`
	Namespace string    `json:"namespace,omitempty"`
	Object    string    `json:"object,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	Count     int       `json:"count"`
	FirstSeen time.Time `json:"first_seen,omitzero"`
	LastSeen  time.Time `json:"last_seen,omitzero"`
	Text      string    `json:"text"`
}

// OutcomeCounts counts recorded action outcomes by result.
type OutcomeCounts struct {
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	Incident  int `json:"incident"`
}

// ActionOutcome is one recorded action and what it led to.
type ActionOutcome struct {
	ID      string    `json:"id"`
	When    time.Time `json:"when"`
	Action  string    `json:"action"`
	Tool    string    `json:"tool,omitempty"`
	Outcome string    `json:"outcome"`
}

// ReportResponse is a cluster's history over [Since, Until]: Until is when
// the report was made.
type ReportResponse struct {
	Cluster string    `json:"cluster"`
	Since   time.Time `json:"since"`
	Until   time.Time `json:"until"`
	// Documents counts, per collection, the documents updated in the window.
	Documents map[string]int `json:"documents"`
	// Partial names collections with more documents in the window than a
	// report reads (MaxReportDocuments, newest first): their counts, and
	// what is derived from them, are lower bounds.
	Partial []string `json:"partial,omitempty"`
	// Problems are the most frequent Warning events, most seen first.
	Problems []Problem     `json:"problems"`
	Outcomes OutcomeCounts `json:"outcomes"`
	// Failures are the outcomes that failed or caused an incident,
	// incidents first, newest first within each.
	Failures []ActionOutcome `json:"failures"`
	// Summary is all of it as one markdown block for a promotion PR.
	Summary string `json:"summary"`
}

// Memory is what shepherd needs from Cortex. Both the in-process Service and
// the HTTP Client implement it.
type Memory interface {
	Ingest(ctx context.Context, req IngestRequest) (IngestResponse, error)
	Query(ctx context.Context, req QueryRequest) (QueryResponse, error)
	Risk(ctx context.Context, req RiskRequest) (RiskResponse, error)
	RecordOutcome(ctx context.Context, rec OutcomeRecord) error
}
