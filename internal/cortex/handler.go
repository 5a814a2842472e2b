package cortex

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MaxRequestBytes caps one request body (an ingest batch).
const MaxRequestBytes = 32 << 20

// VerifyRequest sets a solution's verified flag (true when omitted).
type VerifyRequest struct {
	Verified *bool `json:"verified,omitempty"`
}

// IncidentRequest names a document where a known error showed.
type IncidentRequest struct {
	DocumentID string `json:"document_id"`
}

// Health is the /healthz answer.
type Health struct {
	Status    string `json:"status"`
	Documents int    `json:"documents"`
	Embedder  string `json:"embedder"`
	Error     string `json:"error,omitempty"`
}

// errorBody is every error answer: {"error": "..."}.
type errorBody struct {
	Error string `json:"error"`
}

type handler struct {
	svc      *Service
	log      *slog.Logger
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	docs     *prometheus.GaugeVec
}

// NewHandler serves the Cortex HTTP JSON API over svc, with /healthz and a
// Prometheus /metrics of its own registry (so several handlers in one
// process, as in tests, do not collide).
func NewHandler(svc *Service) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	h := &handler{
		svc: svc,
		log: svc.opts.Logger,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cortex_requests_total", Help: "Cortex API requests by endpoint and status code.",
		}, []string{"endpoint", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cortex_request_duration_seconds", Help: "Cortex API latency by endpoint.",
			Buckets: []float64{.001, .0025, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"endpoint"}),
		docs: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cortex_documents", Help: "Documents stored, by collection (refreshed on /healthz and /metrics).",
		}, []string{"collection"}),
	}
	reg.MustRegister(h.requests, h.latency, h.docs)
	mux := http.NewServeMux()
	route := func(pattern, name string, fn func(w http.ResponseWriter, r *http.Request) (any, error)) {
		mux.Handle(pattern, h.wrap(name, fn))
	}
	route("POST /ingest", "ingest", h.ingest)
	route("POST /query", "query", h.query)
	route("POST /risk", "risk", h.risk)
	route("POST /outcomes", "outcomes", h.outcome)
	route("POST /report", "report", h.report)
	route("GET /known-errors", "known_errors_list", func(w http.ResponseWriter, r *http.Request) (any, error) {
		return svc.ListKnownErrors(r.Context())
	})
	route("POST /known-errors", "known_errors_put", func(w http.ResponseWriter, r *http.Request) (any, error) {
		var e KnownError
		if err := decode(r, &e); err != nil {
			return nil, err
		}
		return svc.PutKnownError(r.Context(), e)
	})
	route("POST /known-errors/{id}/incidents", "incidents_add", func(w http.ResponseWriter, r *http.Request) (any, error) {
		var in IncidentRequest
		if err := decode(r, &in); err != nil {
			return nil, err
		}
		return okBody, svc.AddIncident(r.Context(), r.PathValue("id"), in.DocumentID)
	})
	route("GET /known-errors/{id}/solutions", "solutions_list", func(w http.ResponseWriter, r *http.Request) (any, error) {
		return svc.SolutionsFor(r.Context(), r.PathValue("id"))
	})
	route("POST /known-errors/{id}/solutions/{sid}", "solutions_link", func(w http.ResponseWriter, r *http.Request) (any, error) {
		return okBody, svc.LinkSolution(r.Context(), r.PathValue("id"), r.PathValue("sid"))
	})
	route("POST /solutions", "solutions_put", func(w http.ResponseWriter, r *http.Request) (any, error) {
		var s Solution
		if err := decode(r, &s); err != nil {
			return nil, err
		}
		return svc.PutSolution(r.Context(), s)
	})
	route("POST /solutions/{id}/verify", "solutions_verify", func(w http.ResponseWriter, r *http.Request) (any, error) {
		var v VerifyRequest
		if r.ContentLength != 0 {
			if err := decode(r, &v); err != nil {
				return nil, err
			}
		}
		verified := v.Verified == nil || *v.Verified
		return okBody, svc.VerifySolution(r.Context(), r.PathValue("id"), verified)
	})
	mux.HandleFunc("GET /healthz", h.healthz)
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		h.refreshCounts(r.Context())
		metrics.ServeHTTP(w, r)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, errorBody{Error: clip(fmt.Sprintf("no endpoint %s %s", r.Method, r.URL.Path))})
	})
	return mux
}

var okBody = map[string]string{"status": "ok"}

func (h *handler) ingest(w http.ResponseWriter, r *http.Request) (any, error) {
	var req IngestRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	return h.svc.Ingest(r.Context(), req)
}

func (h *handler) query(w http.ResponseWriter, r *http.Request) (any, error) {
	var req QueryRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	return h.svc.Query(r.Context(), req)
}

func (h *handler) risk(w http.ResponseWriter, r *http.Request) (any, error) {
	var req RiskRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	return h.svc.Risk(r.Context(), req)
}

func (h *handler) outcome(w http.ResponseWriter, r *http.Request) (any, error) {
	var rec OutcomeRecord
	if err := decode(r, &rec); err != nil {
		return nil, err
	}
	return okBody, h.svc.RecordOutcome(r.Context(), rec)
}

func (h *handler) report(w http.ResponseWriter, r *http.Request) (any, error) {
	var req ReportRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	return h.svc.Report(r.Context(), req)
}

func (h *handler) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	n, err := h.svc.Count(ctx, "")
	hl := Health{Status: "ok", Documents: n, Embedder: h.svc.EmbedderName()}
	code := http.StatusOK
	if err != nil {
		hl.Status, hl.Error, code = "unavailable", err.Error(), http.StatusServiceUnavailable
	}
	writeJSON(w, code, hl)
}

func (h *handler) refreshCounts(ctx context.Context) {
	for _, c := range Collections {
		if n, err := h.svc.Count(ctx, c); err == nil {
			h.docs.WithLabelValues(c).Set(float64(n))
		}
	}
}

// wrap turns an endpoint into an http.Handler: JSON in and out, errors as
// {"error": ...} with a status that says whose fault it was, panics caught
// so one bad request never stops the service.
func (h *handler) wrap(name string, fn func(w http.ResponseWriter, r *http.Request) (any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		code := http.StatusOK
		defer func() {
			if p := recover(); p != nil {
				h.log.Error("cortex: handler panic", "endpoint", name, "panic", fmt.Sprint(p))
				code = http.StatusInternalServerError
				writeJSON(w, code, errorBody{Error: "internal error"})
			}
			h.requests.WithLabelValues(name, strconv.Itoa(code)).Inc()
			h.latency.WithLabelValues(name).Observe(time.Since(start).Seconds())
		}()
		r.Body = http.MaxBytesReader(w, r.Body, MaxRequestBytes)
		var out any
		err := requireJSON(r)
		if err == nil {
			out, err = fn(w, r)
		}
		if err != nil {
			code = StatusOf(err)
			if code >= 500 {
				h.log.Warn("cortex: request failed", "endpoint", name, "err", err)
			}
			writeJSON(w, code, errorBody{Error: clip(err.Error())})
			return
		}
		writeJSON(w, code, out)
	})
}

// StatusOf maps an error from Service to its HTTP status.
func StatusOf(err error) int {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, errMediaType):
		return http.StatusUnsupportedMediaType
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	case errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// errMediaType marks a POST whose body is not declared JSON (answered with
// 415).
var errMediaType = errors.New("unsupported media type")

// requireJSON refuses a POST not sent as application/json. A browser sends
// text/plain and form bodies cross-site without a preflight, so without this
// any web page could write to a token-less Cortex on loopback.
func requireJSON(r *http.Request) error {
	if r.Method != http.MethodPost {
		return nil
	}
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err == nil && mt == "application/json" {
		return nil
	}
	if ct == "" {
		ct = "none"
	}
	return kinded{errMediaType, fmt.Sprintf("Content-Type %s is not accepted; send the body as application/json", ct)}
}

// decode reads one JSON value into v, refusing fields v does not have: a
// misspelt "topk" or "collection" silently falling back to a default would
// answer a different question than the caller asked.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return fmt.Errorf("request body is larger than %d bytes: %w", MaxRequestBytes, err)
		}
		if errors.Is(err, io.EOF) {
			return invalid("request body is empty; send a JSON object")
		}
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return invalid("unknown field %s in the request body", f)
		}
		return invalid("malformed JSON: %s", err)
	}
	// Only white space may follow the value (dec.More would take a trailing
	// "}" or "]" for the end of the body).
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return fmt.Errorf("request body is larger than %d bytes: %w", MaxRequestBytes, err)
		}
		return invalid("malformed JSON: more than one value in the body")
	}
	return nil
}

// maxErrorBytes caps the message of an error answer: many quote the request
// (a field name, a value, an id in the path), which may be megabytes.
const maxErrorBytes = 1024

// clip cuts msg to at most maxErrorBytes as JSON encodes it (an escaped
// character counts as its escape), saying that it did.
func clip(msg string) string {
	n := 0
	for i, r := range msg {
		switch {
		case r < 0x20 || r == '<' || r == '>' || r == '&' || r == '\u2028' || r == '\u2029' || r == utf8.RuneError:
			n += 6
		case r == '"' || r == '\\':
			n += 2
		default:
			n += utf8.RuneLen(r)
		}
		if n > maxErrorBytes {
			return msg[:i] + " … (cut)"
		}
	}
	return msg
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
