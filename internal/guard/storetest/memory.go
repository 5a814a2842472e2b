// Package storetest is the shared test suite every guard.Store backend must
// pass, plus the gate's adversarial suite run on top of each backend.
package storetest

import (
	"context"
	"sync"
	"time"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
)

// Memory is a small in-test Cortex: it answers /risk with a fixed
// recommendation (or an error, or slowly) and remembers outcomes.
type Memory struct {
	mu        sync.Mutex
	rec       cortex.Recommendation
	score     float64
	reasoning string
	err       error
	delay     time.Duration
	requests  []cortex.RiskRequest
	outcomes  []cortex.OutcomeRecord
}

// NewMemory answers every assessment with rec.
func NewMemory(rec cortex.Recommendation) *Memory {
	return &Memory{rec: rec, score: 0.1, reasoning: "no similar incidents"}
}

// Set changes the answer.
func (m *Memory) Set(rec cortex.Recommendation, score float64, reasoning string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rec, m.score, m.reasoning = rec, score, reasoning
}

// Fail makes Risk return err (nil restores service).
func (m *Memory) Fail(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.err = err
}

// Slow delays every answer by d, honouring the caller's context.
func (m *Memory) Slow(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.delay = d
}

// Risk implements guard.Memory.
func (m *Memory) Risk(ctx context.Context, req cortex.RiskRequest) (cortex.RiskResponse, error) {
	m.mu.Lock()
	m.requests = append(m.requests, req)
	rec, score, reasoning, err, delay := m.rec, m.score, m.reasoning, m.err, m.delay
	m.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return cortex.RiskResponse{}, ctx.Err()
		}
	}
	if err != nil {
		return cortex.RiskResponse{}, err
	}
	return cortex.RiskResponse{Score: score, Recommendation: rec, Class: "test", Reasoning: reasoning}, nil
}

// RecordOutcome implements guard.Memory.
func (m *Memory) RecordOutcome(ctx context.Context, rec cortex.OutcomeRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.outcomes = append(m.outcomes, rec)
	return nil
}

// Outcomes returns what was recorded so far.
func (m *Memory) Outcomes() []cortex.OutcomeRecord {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]cortex.OutcomeRecord(nil), m.outcomes...)
}

// Requests returns the risk requests seen so far.
func (m *Memory) Requests() []cortex.RiskRequest {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]cortex.RiskRequest(nil), m.requests...)
}
