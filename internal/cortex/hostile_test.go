package cortex_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
)

// expect is what a hostile request may get back.
type expect int

const (
	ok     expect = iota // 2xx: the request is valid
	bad                  // 4xx: the caller must fix it
	either               // 2xx or 4xx: JSON leaves it open (duplicate keys)
)

func (e expect) String() string { return [...]string{"2xx", "4xx", "2xx or 4xx"}[e] }

// effect is what a successful request of an endpoint adds: a document to a
// collection, a known error, a solution of ke-1, an incident of ke-1.
const (
	effNone       = ""
	effKnownError = "known error"
	effSolution   = "solution of ke-1"
	effIncident   = "incident of ke-1"
)

type hostileCase struct {
	name   string
	method string
	path   string
	ctype  string // Content-Type; "" sends none
	body   []byte
	want   expect
	code   int    // when not 0, the exact status wanted
	effect string // what a 2xx adds (a collection, or one of eff*)
}

// field is one field of an endpoint's request body, with what each kind of
// hostile value put there should get (kinds not named take the default of
// the field's type).
type field struct {
	path string // dot-separated keys and array indexes
	typ  string // str, int, time, bool, arr, obj, any
	over map[string]expect
	// noEffect names value kinds whose 2xx does not add the endpoint's effect.
	noEffect map[string]bool
}

func with(f field, kv ...any) field {
	if f.over == nil {
		f.over = map[string]expect{}
	}
	for i := 0; i < len(kv); i += 2 {
		f.over[kv[i].(string)] = kv[i+1].(expect)
	}
	return f
}

// The field kinds most requests have: free text, a key (id, cluster: at most
// MaxKeyBytes, no NUL), text that is stored (no NUL, bounded), and a string
// that must be one of a few values.
func strF(path string, kv ...any) field { return with(field{path: path, typ: "str"}, kv...) }
func keyF(path string, kv ...any) field {
	return strF(path, append([]any{"nul", bad, "long", bad, "huge", bad}, kv...)...)
}
func textF(path string, kv ...any) field {
	return strF(path, append([]any{"nul", bad, "huge", bad}, kv...)...)
}
func strictF(path string, kv ...any) field {
	return with(field{path: path, typ: "enum"}, append([]any{"null", bad}, kv...)...)
}
func intF(path string, kv ...any) field  { return with(field{path: path, typ: "int"}, kv...) }
func timeF(path string, kv ...any) field { return with(field{path: path, typ: "time"}, kv...) }
func boolF(path string, kv ...any) field { return with(field{path: path, typ: "bool"}, kv...) }
func arrF(path string, kv ...any) field  { return with(field{path: path, typ: "arr"}, kv...) }
func objF(path string, kv ...any) field  { return with(field{path: path, typ: "obj"}, kv...) }
func anyF(path string, kv ...any) field  { return with(field{path: path, typ: "any"}, kv...) }

// value is one hostile value, raw JSON spliced into a body; fields
// override expectations by its kind (its name unless it says otherwise).
type value struct {
	name string
	raw  []byte
	def  map[string]expect // default expectation by field type
}

// kindOf names the kind of the values whose kind is not their name.
var kindOf = map[string]string{"time huge": "huge"} // a huge string where a string goes

const hugeString = 1 << 20

var seq int

func uniq() string { seq++; return fmt.Sprintf("h%d-", seq) }

func hostileValues() []value {
	all := func(e expect) map[string]expect {
		return map[string]expect{"str": e, "enum": e, "int": e, "time": e, "bool": e, "arr": e, "obj": e, "any": e}
	}
	only := func(base expect, kv ...any) map[string]expect {
		m := all(base)
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1].(expect)
		}
		return m
	}
	str := func(s string) []byte { return []byte(`"` + uniq() + s + `"`) }
	deepObj := func(n int) []byte {
		return []byte(strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n))
	}
	// Strings of every shape: valid only where a string goes.
	vs := []value{
		{"plain", str("x"), only(bad, "str", ok, "any", ok)},
		{"surrogate", str(`\ud800x\udc00\udfff\ud800`), only(bad, "str", ok, "any", ok)},
		// Raw bytes that are not UTF-8: encoding/json reads them as U+FFFD.
		{"utf8", str("\xff\xfe\xc0\x80\xed\xa0\x80"), only(bad, "str", ok, "any", ok)},
		{"nul", str(`\u0000x`), only(bad, "str", ok, "any", ok)},
		{"ctrl", str("\x01\n"), all(bad)}, // raw control characters are not JSON
		{"long", str(strings.Repeat("k", cortex.MaxKeyBytes+1)), only(bad, "str", ok, "any", ok)},
		{"huge", str(strings.Repeat("x", hugeString)), only(bad, "str", ok, "any", ok)},
		{"null", []byte("null"), all(ok)},
		{"true", []byte("true"), only(bad, "bool", ok, "any", ok)},
		{"zero", []byte("0"), only(bad, "int", ok, "any", ok)},
		{"negative", []byte("-1"), only(bad, "any", ok)},
		{"minus zero", []byte("-0"), only(bad, "int", ok, "any", ok)},
		{"fraction", []byte("1.5"), only(bad, "any", ok)},
		{"exponent", []byte("1e2"), only(bad, "any", ok)},
		{"1e300", []byte("1e300"), only(bad, "any", ok)},
		{"1e400", []byte("1e400"), all(bad)},
		{"2^63", []byte("9223372036854775808"), only(bad, "any", ok)},
		{"-2^63-1", []byte("-9223372036854775809"), only(bad, "any", ok)},
		{"2^63-1", []byte("9223372036854775807"), only(bad, "int", ok, "any", ok)},
		{"huge number", []byte(strings.Repeat("9", 100_000)), all(bad)},
		{"NaN", []byte("NaN"), all(bad)},
		{"-Infinity", []byte("-Infinity"), all(bad)},
		{"hex", []byte("0x10"), all(bad)},
		{"quoted number", []byte(`"5"`), only(bad, "str", ok, "any", ok)},
		{"quoted true", []byte(`"true"`), only(bad, "str", ok, "any", ok)},
		{"empty object", []byte("{}"), only(bad, "obj", ok, "any", ok)},
		{"empty array", []byte("[]"), only(bad, "arr", ok, "any", ok)},
		{"array of null", []byte("[null]"), only(bad, "any", ok)},
		{"object of numbers", []byte(`{"a": 1, "b": [2]}`), only(bad, "any", ok)},
		{"deep 9990", deepObj(9990), only(bad, "any", ok)},
		{"deep 10000", deepObj(10000), all(bad)},
		{"deep array 10000", []byte(strings.Repeat("[", 10000) + strings.Repeat("]", 10000)), all(bad)},
		// Times: the zero time means "not given"; int64 nanoseconds end in
		// 1677 and 2262.
		{"time zero", []byte(`"0001-01-01T00:00:00Z"`), only(bad, "str", ok, "time", ok, "any", ok)},
		{"time year 1", []byte(`"0001-01-01T00:00:01Z"`), only(bad, "str", ok, "time", bad, "any", ok)},
		{"time 1677", []byte(`"1677-09-21T00:00:00Z"`), only(bad, "str", ok, "time", bad, "any", ok)},
		{"time 1970", []byte(`"1970-01-01T00:00:00Z"`), only(bad, "str", ok, "time", ok, "any", ok)},
		{"time offset", []byte(`"2026-04-30T23:59:59.999999999+14:00"`), only(bad, "str", ok, "time", ok, "any", ok)},
		{"time 2263", []byte(`"2263-01-01T00:00:00Z"`), only(bad, "str", ok, "time", bad, "any", ok)},
		{"time 9999", []byte(`"9999-12-31T23:59:59Z"`), only(bad, "str", ok, "time", bad, "any", ok)},
		{"time 10000", []byte(`"10000-01-01T00:00:00Z"`), only(bad, "str", ok, "any", ok)},
		{"time negative year", []byte(`"-0001-01-01T00:00:00Z"`), only(bad, "str", ok, "any", ok)},
		{"time feb 30", []byte(`"2026-02-30T00:00:00Z"`), only(bad, "str", ok, "any", ok)},
		{"time date only", []byte(`"2026-04-30"`), only(bad, "str", ok, "any", ok)},
		{"time huge", []byte(`"2026-04-30T00:00:00Z` + strings.Repeat("9", hugeString) + `"`), only(bad, "str", ok, "any", ok)},
	}
	return vs
}

// set returns body (a JSON object) with the value at path replaced by raw,
// spliced in byte for byte so that it may be anything, even invalid JSON.
func set(t *testing.T, body, path string, raw []byte) []byte {
	t.Helper()
	var v any
	dec := json.NewDecoder(strings.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("valid body %s: %v", body, err)
	}
	const mark = "\x00hostile value\x00"
	cur := v
	parts := strings.Split(path, ".")
	for i, p := range parts {
		last := i == len(parts)-1
		switch c := cur.(type) {
		case map[string]any:
			if last {
				c[p] = mark
			}
			cur = c[p]
		case []any:
			n, err := strconv.Atoi(p)
			if err != nil || n >= len(c) {
				t.Fatalf("path %s of %s", path, body)
			}
			if last {
				c[n] = mark
			}
			cur = c[n]
		default:
			t.Fatalf("path %s of %s", path, body)
		}
	}
	b, _ := json.Marshal(v)
	q, _ := json.Marshal(mark)
	if bytes.Count(b, q) != 1 {
		t.Fatalf("path %s of %s", path, body)
	}
	return bytes.Replace(b, q, raw, 1)
}

type endpoint struct {
	name, method, path string
	body               func() string // a fresh valid body; nil for a GET or a body-less POST
	effect             string
	fields             []field
	// over overrides the expectation of a generic body case for this
	// endpoint (verify takes an empty body, {} or null as "verified").
	over map[string]expect
}

// syncBuffer collects the server's log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestAPISurvivesHostileRequests(t *testing.T) {
	start := time.Now()
	ctx := context.Background()
	var logs syncBuffer
	s := newService(t, cortex.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	srv, _ := serve(t, s)
	hc := &http.Client{
		Timeout:       2 * time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	requests := 0
	send := func(method, path, ctype string, body []byte) (int, http.Header, []byte) {
		t.Helper()
		requests++
		req, err := http.NewRequest(method, srv.URL+path, bytes.NewReader(body))
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %.200s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%s %.200s: reading the answer: %v", method, path, err)
		}
		return resp.StatusCode, resp.Header, b
	}

	// What the valid requests of this test put there.
	want := map[string]int{}
	n := 0
	next := func() int { n++; return n }
	validQuery := []byte(`{"query": "OOMKilled memory limit", "top_k": 3}`)

	// Seed what the id paths name: documents, known error ke-1, solution sol-1.
	for _, seed := range []struct{ path, body, effect string }{
		{"/ingest", `{"collection": "documentation", "documents": [{"id": "seed-1", "text": "OOMKilled runbook: raise the memory limit"}]}`, cortex.CollectionDocs},
		{"/ingest", `{"collection": "cluster_events", "documents": [{"id": "seed-ev", "cluster": "prod", "text": "Back-off restarting failed container api (OOMKilled)"}]}`, cortex.CollectionEvents},
		{"/known-errors", `{"id": "ke-1", "pattern": "OOMKilled api container"}`, effKnownError},
		{"/solutions", `{"id": "sol-1", "description": "raise the api memory limit", "error_ids": ["ke-1"]}`, effSolution},
	} {
		if code, _, body := send("POST", seed.path, "application/json", []byte(seed.body)); code != 200 {
			t.Fatalf("seed %s: %d %s", seed.path, code, body)
		}
		want[seed.effect]++
	}

	endpoints := []endpoint{
		{name: "ingest", method: "POST", path: "/ingest", effect: cortex.CollectionDocs,
			body: func() string {
				i := next()
				return fmt.Sprintf(`{"collection": "documentation", "documents": [{"id": "doc-%d", "text": "OOMKilled runbook %d: raise the memory limit",
					"cluster": "prod", "metadata": {"source": "runbooks/oom-%d.md"}, "created_at": "2026-04-01T00:00:00Z"}]}`, i, i, i)
			},
			fields: []field{
				strictF("collection"),
				arrF("documents", "null", bad, "empty array", bad),
				objF("documents.0", "null", bad, "empty object", bad),
				keyF("documents.0.id", "null", bad),
				textF("documents.0.text", "null", bad),
				keyF("documents.0.cluster", "null", ok),
				strictF("documents.0.collection", "null", ok),
				objF("documents.0.metadata", "null", ok),
				textF("documents.0.metadata.source"),
				timeF("documents.0.created_at"),
				timeF("documents.0.updated_at"),
			}},
		{name: "query", method: "POST", path: "/query",
			body: func() string {
				return fmt.Sprintf(`{"query": "OOMKilled memory limit %d", "top_k": 3, "collections": ["documentation"], "cluster": "prod"}`, next())
			},
			fields: []field{
				strF("query", "huge", bad, "null", bad),
				intF("top_k", "negative", bad),
				arrF("collections", "null", ok),
				strictF("collections.0"),
				strF("cluster"),
			}},
		{name: "risk", method: "POST", path: "/risk",
			body: func() string {
				return fmt.Sprintf(`{"action": "restart shop/api-%d", "tool": "restart_workload", "arguments": {"namespace": "shop", "name": "api"}, "cluster": "prod"}`, next())
			},
			fields: []field{
				strF("action", "huge", bad),
				strF("tool", "long", bad, "huge", bad),
				objF("arguments", "null", ok, "object of numbers", ok, "deep 9990", ok),
				anyF("arguments.name"),
				strF("cluster"),
			}},
		{name: "outcomes", method: "POST", path: "/outcomes", effect: cortex.CollectionChat,
			body: func() string {
				return fmt.Sprintf(`{"action": "restart shop/api-%d", "tool": "restart_workload", "arguments": {"namespace": "shop", "name": "api"},
					"outcome": "failed", "details": "pods crashlooped", "cluster": "prod", "when": "2026-04-30T10:00:00Z"}`, next())
			},
			fields: []field{
				keyF("id"),
				textF("action", "null", bad),
				textF("tool", "long", bad),
				objF("arguments", "null", ok, "object of numbers", ok, "deep 9990", ok),
				// The name lands in metadata, at most 8 KiB of text.
				anyF("arguments.name", "nul", bad, "huge", bad, "deep 9990", bad),
				strictF("outcome"),
				textF("details"),
				keyF("cluster"),
				timeF("when"),
			}},
		{name: "report", method: "POST", path: "/report",
			body: func() string { return `{"cluster": "prod", "top": 5, "since": "2026-04-01T00:00:00Z"}` },
			fields: []field{
				keyF("cluster", "null", bad),
				// A report may look back as far as it likes, not forward.
				timeF("since", "time year 1", ok, "time 1677", ok),
				intF("top", "negative", bad, "2^63-1", bad),
			}},
		// Before known_errors_put: the ids its cases create ("5", times)
		// would be valid error_ids.
		{name: "solutions_put", method: "POST", path: "/solutions", effect: effSolution,
			body: func() string {
				i := next()
				return fmt.Sprintf(`{"id": "sol-%d", "description": "raise the api memory limit %d", "verified": false, "error_ids": ["ke-1"]}`, i, i)
			},
			fields: []field{
				keyF("id"),
				textF("description", "null", bad),
				boolF("verified", "null", ok),
				{path: "error_ids", typ: "arr", over: map[string]expect{"null": ok},
					noEffect: map[string]bool{"null": true, "empty array": true}},
				strictF("error_ids.0"),
				timeF("created_at"),
				timeF("updated_at"),
			}},
		{name: "known_errors_put", method: "POST", path: "/known-errors", effect: effKnownError,
			body: func() string {
				i := next()
				return fmt.Sprintf(`{"id": "ke-%d", "pattern": "OOMKilled container api-%d", "summary": "the api runs out of memory",
					"cluster": "prod", "incidents": ["seed-1"], "created_at": "2026-04-01T00:00:00Z"}`, i, i)
			},
			fields: []field{
				keyF("id"),
				textF("pattern", "null", bad),
				textF("summary"),
				keyF("cluster"),
				arrF("incidents", "null", ok),
				keyF("incidents.0", "null", bad),
				timeF("created_at"),
			}},
		{name: "incidents_add", method: "POST", path: "/known-errors/ke-1/incidents", effect: effIncident,
			body: func() string { return fmt.Sprintf(`{"document_id": "doc-%d"}`, next()) },
			fields: []field{
				keyF("document_id", "null", bad),
			}},
		{name: "solutions_verify", method: "POST", path: "/solutions/sol-1/verify",
			body: func() string { return `{"verified": true}` },
			fields: []field{
				boolF("verified", "null", ok),
			},
			over: map[string]expect{"empty": ok, "null": ok, "{}": ok}},
		{name: "solutions_link", method: "POST", path: "/known-errors/ke-1/solutions/sol-1"},
		{name: "known_errors_list", method: "GET", path: "/known-errors"},
		{name: "solutions_list", method: "GET", path: "/known-errors/ke-1/solutions"},
		{name: "healthz", method: "GET", path: "/healthz"},
		{name: "metrics", method: "GET", path: "/metrics"},
	}

	served := map[string]bool{}
	for _, ep := range endpoints {
		served[ep.method+" "+ep.path] = true
	}
	var cases []hostileCase
	add := func(c hostileCase) { cases = append(cases, c) }
	for _, ep := range endpoints {
		valid := func() []byte {
			if ep.body == nil {
				return nil
			}
			return []byte(ep.body())
		}
		ct := ""
		if ep.method == "POST" {
			ct = "application/json"
		}
		add(hostileCase{name: "valid", method: ep.method, path: ep.path, ctype: ct, body: valid(), want: ok, effect: ep.effect})

		// Wrong methods.
		for _, m := range []string{"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND"} {
			if m != ep.method && !served[m+" "+ep.path] {
				add(hostileCase{name: "method " + m, method: m, path: ep.path, ctype: "application/json", body: valid(), want: bad})
			}
		}
		// Query strings and trailing slashes are not parameters.
		add(hostileCase{name: "query string", method: ep.method, path: ep.path + "?top_k=-1&collection=secrets&%00=%ff",
			ctype: ct, body: valid(), want: ok, effect: ep.effect})
		add(hostileCase{name: "trailing slash", method: ep.method, path: ep.path + "/", ctype: ct, body: valid(), want: bad})
		if ep.method != "POST" {
			add(hostileCase{name: "GET with a body", method: ep.method, path: ep.path, body: []byte(`{"garbage`), want: ok})
			continue
		}

		// Content types.
		for _, c := range []string{"", "text/plain", "text/plain; charset=utf-8", "application/x-www-form-urlencoded",
			"multipart/form-data; boundary=x", "application/jsonx", "application/json-seq", "application/json, text/plain",
			"application/json; charset", "%%%", "application/*", "*/*"} {
			add(hostileCase{name: "Content-Type " + strconv.Quote(c), method: "POST", path: ep.path, ctype: c, body: valid(), want: bad, code: 415})
		}
		for _, c := range []string{"application/json; charset=utf-8", "APPLICATION/JSON", "application/json ; charset=latin1"} {
			add(hostileCase{name: "Content-Type " + strconv.Quote(c), method: "POST", path: ep.path, ctype: c, body: valid(), want: ok, effect: ep.effect})
		}

		// Bodies that are not the object asked for.
		bodyExpect := func(name string, def expect) expect {
			if ep.body == nil {
				return ok // a body-less endpoint does not read it
			}
			if e, found := ep.over[name]; found {
				return e
			}
			return def
		}
		bodies := []struct {
			name string
			body []byte
		}{
			{"empty", nil}, {"whitespace", []byte(" \r\n\t")}, {"null", []byte("null")}, {"{}", []byte("{}")},
			{"array", []byte("[]")}, {"array of objects", []byte("[{}]")}, {"string", []byte(`"{}"`)}, {"number", []byte("0")},
			{"negative", []byte("-1")}, {"1e300", []byte("1e300")}, {"bool", []byte("true")}, {"NaN", []byte("NaN")},
			{"open brace", []byte("{")}, {"close brace", []byte("}")}, {"key only", []byte(`{"a"}`)}, {"single quotes", []byte(`{'query': 'x'}`)},
			{"unknown field", []byte(`{"nope": 1}`)},
			{"huge unknown field", []byte(`{"` + strings.Repeat("f", hugeString) + `": 1}`)},
			{"deep array", []byte(strings.Repeat("[", 10000) + strings.Repeat("]", 10000))},
			{"deep object", []byte(strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000))},
			{"deep unknown field", []byte(`{"nope":` + strings.Repeat("[", 9990) + strings.Repeat("]", 9990) + "}")},
			{"NUL", []byte("\x00")},
			{"NUL then valid", append([]byte("\x00"), valid()...)},
			{"invalid UTF-8 then valid", append([]byte("\xff\xfe"), valid()...)},
			{"BOM then valid", append([]byte("\xef\xbb\xbf"), valid()...)},
			{"UTF-16", []byte("{\x00}\x00")},
			{"trailing brace", append(valid(), '}')},
			{"trailing bracket", append(valid(), ']')},
			{"trailing garbage", append(valid(), []byte(" garbage")...)},
			{"trailing NUL", append(valid(), 0)},
			{"trailing comma", append(valid(), ',')},
			{"two values", append(valid(), valid()...)},
			{"truncated", func() []byte { v := valid(); return v[:max(len(v)-1, 0)] }()},
		}
		for _, b := range bodies {
			add(hostileCase{name: "body " + b.name, method: "POST", path: ep.path, ctype: "application/json", body: b.body, want: bodyExpect(b.name, bad)})
		}
		// Trailing whitespace is no garbage.
		add(hostileCase{name: "trailing whitespace", method: "POST", path: ep.path, ctype: "application/json",
			body: append(valid(), []byte(" \n\t\r ")...), want: ok, effect: ep.effect})

		// Size: one byte past the limit, and exactly at it.
		pad := func(size int) []byte {
			v := valid()
			return append(bytes.Repeat([]byte(" "), size-len(v)), v...)
		}
		add(hostileCase{name: "body past the limit", method: "POST", path: ep.path, ctype: "application/json",
			body: pad(cortex.MaxRequestBytes + 1), want: bodyExpect("past the limit", bad), code: map[bool]int{true: 413}[ep.body != nil]})
		add(hostileCase{name: "body at the limit", method: "POST", path: ep.path, ctype: "application/json",
			body: pad(cortex.MaxRequestBytes), want: ok, effect: ep.effect})
		if ep.body == nil {
			continue
		}

		// Every hostile value in every field.
		for _, f := range ep.fields {
			for _, v := range hostileValues() {
				kind := cmp.Or(kindOf[v.name], v.name)
				e, found := f.over[kind]
				if !found {
					e = v.def[f.typ]
				}
				eff := ep.effect
				if f.noEffect[kind] {
					eff = effNone
				}
				add(hostileCase{name: f.path + " = " + v.name, method: "POST", path: ep.path, ctype: "application/json",
					body: set(t, ep.body(), f.path, v.raw), want: e, effect: eff})
			}
			// A field given twice: JSON leaves open which one counts.
			b := []byte(ep.body())
			if i := strings.LastIndex(f.path, "."); i < 0 {
				dup := append([]byte(`{"`+f.path+`": "`+uniq()+`", `), b[1:]...)
				add(hostileCase{name: f.path + " twice", method: "POST", path: ep.path, ctype: "application/json",
					body: dup, want: either, effect: ep.effect})
			}
		}
	}

	// Requests that only one endpoint has.
	ingest := func(name string, e expect, effect, body string) {
		add(hostileCase{name: name, method: "POST", path: "/ingest", ctype: "application/json", body: []byte(body), want: e, effect: effect})
	}
	doc := func(id, extra string) string {
		return fmt.Sprintf(`{"id": %q, "text": "OOMKilled runbook %s"%s}`, id, id, extra)
	}
	ingest("unknown collection", bad, "", `{"collection": "secrets", "documents": [`+doc("x-1", "")+`]}`)
	ingest("collection in capitals", bad, "", `{"collection": "Documentation", "documents": [`+doc("x-2", "")+`]}`)
	ingest("collection with a space", bad, "", `{"collection": "documentation ", "documents": [`+doc("x-3", "")+`]}`)
	ingest("collection given twice, valid last", either, cortex.CollectionDocs, `{"collection": "secrets", "collection": "documentation", "documents": [`+doc("x-4", "")+`]}`)
	ingest("collection given twice, invalid last", bad, "", `{"collection": "documentation", "collection": "secrets", "documents": [`+doc("x-5", "")+`]}`)
	ingest("id over the key limit", bad, "", `{"collection": "documentation", "documents": [`+doc(strings.Repeat("i", cortex.MaxKeyBytes+1), "")+`]}`)
	ingest("id of spaces", bad, "", `{"collection": "documentation", "documents": [`+doc("   ", "")+`]}`)
	ingest("text of spaces", bad, "", `{"collection": "documentation", "documents": [{"id": "x-6", "text": " \n\t "}]}`)
	ingest("event without a cluster", bad, "", `{"collection": "cluster_events", "documents": [`+doc("x-7", "")+`]}`)
	ingest("clusters disagree", bad, "", `{"collection": "documentation", "documents": [`+doc("x-8", `, "cluster": "a", "metadata": {"cluster": "b"}`)+`]}`)
	ingest("metadata over 8 KiB", bad, "", `{"collection": "documentation", "documents": [`+doc("x-9", `, "metadata": {"a": "`+strings.Repeat("m", 9000)+`"}`)+`]}`)
	ingest("metadata key with NUL", bad, "", `{"collection": "documentation", "documents": [`+doc("x-10", `, "metadata": {"a\u0000b": "c"}`)+`]}`)
	ingest("no documents", bad, "", `{"collection": "documentation", "documents": []}`)
	ingest("a valid batch of two", ok, "", `{"collection": "documentation", "documents": [`+doc("x-11", "")+`, `+doc("x-12", "")+`]}`)
	cases[len(cases)-1].effect = cortex.CollectionDocs + "*2"
	ingest("one id twice in a batch", ok, cortex.CollectionDocs, `{"collection": "documentation", "documents": [`+doc("x-13", "")+`, `+doc("x-13", "")+`]}`)
	for i, last := range []string{doc("", ""), `{"id": "x-b3", "text": ""}`, doc("x-b4", `, "collection": "manifests"`),
		doc("x-b5", `, "text": "`+strings.Repeat("t", 65<<10)+`"`), doc("x-b6", `, "created_at": "9999-01-01T00:00:00Z"`),
		doc("x-b7", `, "cluster": "`+strings.Repeat("c", cortex.MaxKeyBytes+1)+`"`), doc("x-b8", `, "id": "x-b8\u0000"`)} {
		ingest(fmt.Sprintf("batch with a bad last document %d", i), bad, "",
			`{"collection": "documentation", "documents": [`+doc(fmt.Sprintf("x-b%d-1", i), "")+`, `+doc(fmt.Sprintf("x-b%d-2", i), "")+`, `+last+`]}`)
	}
	var many []string
	for i := range cortex.DefaultReportTop*250 + 1 { // 5001 > the batch limit of 5000
		many = append(many, doc(fmt.Sprintf("m-%d", i), ""))
	}
	ingest("batch over the limit", bad, "", `{"collection": "documentation", "documents": [`+strings.Join(many, ",")+`]}`)

	query := func(name string, e expect, body string) {
		add(hostileCase{name: name, method: "POST", path: "/query", ctype: "application/json", body: []byte(body), want: e})
	}
	for _, q := range []string{`\"`, `*`, `NEAR(a b)`, `a AND OR NOT b`, `{body}: x`, `-x ^y`, `col:umn`, `'; DROP TABLE documents; --`,
		`)))(((`, `\u0000`, `\ud800`, `%`, `_`, `\\`, `🙂`, `ǅ İ ß ﬃ`} {
		query("query "+q, ok, `{"query": "`+q+`"}`)
	}
	query("query of punctuation", ok, `{"query": "!!! ??? ..."}`)
	query("query of 5000 words", bad, `{"query": "`+strings.Repeat("w ", 2500)+`"}`)
	query("query at the limit", ok, `{"query": "`+strings.Repeat("word ", 4096/5)+`"}`)
	query("query one byte over", bad, `{"query": "`+strings.Repeat("q", 4097)+`"}`)
	query("collections repeated", ok, `{"query": "x", "collections": ["documentation", "documentation", "manifests"]}`)
	query("collections 1000 times", ok, `{"query": "x", "collections": [`+strings.Repeat(`"documentation",`, 999)+`"documentation"]}`)
	query("top_k over the max", ok, `{"query": "x", "top_k": 1000000}`)
	query("spaces only", bad, `{"query": " \t\n "}`)
	query("query given twice, empty last", bad, `{"query": "x", "query": ""}`)

	risk := func(name string, e expect, body string) {
		add(hostileCase{name: name, method: "POST", path: "/risk", ctype: "application/json", body: []byte(body), want: e})
	}
	risk("tool without action", ok, `{"tool": "scale_workload", "arguments": {"namespace": "a", "name": "b", "replicas": 0}}`)
	risk("replicas 1e300", ok, `{"tool": "scale_workload", "arguments": {"replicas": 1e300}}`)
	risk("replicas -2^63", ok, `{"tool": "scale_workload", "arguments": {"replicas": -9223372036854775808}}`)
	risk("replicas as a huge string", ok, `{"tool": "scale_workload", "arguments": {"replicas": "`+strings.Repeat("9", 5000)+`"}}`)
	risk("action over the limit", bad, `{"action": "`+strings.Repeat("a", 4097)+`"}`)
	risk("action of spaces, no tool", bad, `{"action": "   "}`)
	risk("10000 arguments", ok, `{"action": "restart x", "arguments": {`+func() string {
		var kv []string
		for i := range 10000 {
			kv = append(kv, fmt.Sprintf(`"k%d": %d`, i, i))
		}
		return strings.Join(kv, ",")
	}()+`}}`)

	outcome := func(name string, e expect, body string) {
		add(hostileCase{name: name, method: "POST", path: "/outcomes", ctype: "application/json", body: []byte(body), want: e, effect: cortex.CollectionChat})
	}
	outcome("outcome in capitals", bad, `{"action": "restart x", "outcome": "FAILED"}`)
	outcome("outcome huge", bad, `{"action": "restart x", "outcome": "`+strings.Repeat("o", hugeString)+`"}`)
	outcome("id over the key limit", bad, `{"id": "`+strings.Repeat("i", cortex.MaxKeyBytes+1)+`", "action": "restart x", "outcome": "failed"}`)
	outcome("huge gitops content", ok, `{"action": "update shop/api", "tool": "gitops_change", "outcome": "succeeded",
		"arguments": {"operation": "update", "file_path": "apps/api.yaml", "content": "`+strings.Repeat("kind: Deployment\\n", 50000)+`"}}`)

	report := func(name string, e expect, body string) {
		add(hostileCase{name: name, method: "POST", path: "/report", ctype: "application/json", body: []byte(body), want: e})
	}
	report("unknown cluster", ok, `{"cluster": "nowhere"}`)
	report("top 100", ok, `{"cluster": "prod", "top": 100}`)
	report("top 101", bad, `{"cluster": "prod", "top": 101}`)
	report("cluster of spaces", bad, `{"cluster": "   "}`)
	report("since in a second", bad, `{"cluster": "prod", "since": "2026-05-01T12:00:01Z"}`)

	knownError := func(name string, e expect, effect, body string) {
		add(hostileCase{name: name, method: "POST", path: "/known-errors", ctype: "application/json", body: []byte(body), want: e, effect: effect})
	}
	knownError("pattern of spaces", bad, "", `{"pattern": "   "}`)
	knownError("incident over the key limit", bad, "", `{"pattern": "x", "incidents": ["`+strings.Repeat("i", cortex.MaxKeyBytes+1)+`"]}`)
	knownError("10000 incidents", ok, effKnownError, `{"pattern": "x", "incidents": [`+func() string {
		var ids []string
		for i := range 10000 {
			ids = append(ids, fmt.Sprintf(`"inc-%d"`, i))
		}
		return strings.Join(ids, ",")
	}()+`]}`)

	solution := func(name string, e expect, effect, body string) {
		add(hostileCase{name: name, method: "POST", path: "/solutions", ctype: "application/json", body: []byte(body), want: e, effect: effect})
	}
	// The solution is written and linked in one transaction: a missing
	// error after ke-1 leaves neither.
	solution("linked to ke-1 and a missing error", bad, "", `{"id": "sol-half", "description": "x", "error_ids": ["ke-1", "missing"]}`)
	solution("linked to ke-1 and an error over the key limit", bad, "", `{"id": "sol-half2", "description": "x", "error_ids": ["ke-1", "`+strings.Repeat("e", cortex.MaxKeyBytes+1)+`"]}`)
	solution("description of spaces", bad, "", `{"description": "  "}`)

	// Ids in paths.
	long := strings.Repeat("i", cortex.MaxKeyBytes+1)
	longer := strings.Repeat("i", 100_000)
	for _, id := range []struct {
		name, esc string
		e         expect
	}{
		{"missing", "missing", bad}, {"over the key limit", long, bad}, {"100 KB", longer, bad},
		{"NUL", "%00", bad}, {"NUL inside", "ke-1%00", bad}, {"invalid UTF-8", "%ff%fe", bad},
		{"lone surrogate", "%ed%a0%80", bad}, {"slash", "ke-1%2Fx", bad}, {"percent", "%25", bad}, {"unicode", "%F0%9F%99%82", bad},
	} {
		for _, p := range []struct{ method, path string }{
			{"POST", "/known-errors/" + id.esc + "/incidents"}, {"GET", "/known-errors/" + id.esc + "/solutions"},
			{"POST", "/known-errors/" + id.esc + "/solutions/sol-1"}, {"POST", "/known-errors/ke-1/solutions/" + id.esc},
			{"POST", "/solutions/" + id.esc + "/verify"},
		} {
			e := id.e
			if p.method == "GET" && (id.name == "missing" || id.name == "slash" || id.name == "percent" || id.name == "unicode") {
				e = ok // a well-formed id without solutions has none
			}
			body := []byte(`{"document_id": "doc-path"}`)
			if strings.HasSuffix(p.path, "/verify") {
				body = []byte(`{"verified": false}`)
			}
			add(hostileCase{name: "path id " + id.name, method: p.method, path: p.path, ctype: "application/json", body: body, want: e})
		}
	}
	add(hostileCase{name: "unknown path", method: "POST", path: "/ingest2", ctype: "application/json", body: []byte("{}"), want: bad})
	add(hostileCase{name: "unknown path with NUL", method: "GET", path: "/%00", want: bad})
	add(hostileCase{name: "unknown path, long", method: "GET", path: "/" + strings.Repeat("p", 200_000), want: bad})

	counts := func() map[string]int {
		t.Helper()
		got := map[string]int{}
		for _, c := range cortex.Collections {
			n, err := s.Count(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			got[c] = n
		}
		kes, err := s.ListKnownErrors(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got[effKnownError] = len(kes)
		for _, e := range kes {
			if e.ID == "ke-1" {
				got[effIncident] = len(e.Incidents)
			}
		}
		sols, err := s.SolutionsFor(ctx, "ke-1")
		if err != nil {
			t.Fatal(err)
		}
		got[effSolution] = len(sols)
		return got
	}
	forbidden := []string{"goroutine ", "panic", "runtime error", ".go:", "runtime.", "internal error"}
	check := func(what string, c hostileCase, code int, hdr http.Header, body []byte) bool {
		t.Helper()
		if code >= 500 {
			t.Errorf("%s: %d %.300s; a 5xx for bad input", what, code, body)
			return false
		}
		switch {
		case c.code != 0 && code != c.code:
			t.Errorf("%s: %d %.300s; want %d", what, code, body, c.code)
		case c.want == ok && (code < 200 || code > 299):
			t.Errorf("%s: %d %.300s; want 2xx", what, code, body)
		case c.want == bad && (code < 400 || code > 499):
			t.Errorf("%s: %d %.300s; want 4xx", what, code, body)
		case c.want == either && (code < 200 || code > 299) && (code < 400 || code > 499):
			t.Errorf("%s: %d %.300s; want 2xx or 4xx", what, code, body)
		}
		if strings.HasPrefix(c.path, "/metrics") && code == 200 {
			return code >= 200 && code <= 299
		}
		if ct := hdr.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q", what, ct)
		}
		if !json.Valid(body) {
			t.Errorf("%s: %d answered with invalid JSON %.300q", what, code, body)
		}
		if code >= 400 {
			var e map[string]any
			_ = json.Unmarshal(body, &e)
			msg, _ := e["error"].(string)
			if len(body) >= 2048 || len(e) != 1 || strings.TrimSpace(msg) == "" {
				t.Errorf("%s: %d error answer of %d bytes: %.300q", what, code, len(body), body)
			}
			for _, f := range forbidden {
				if strings.Contains(strings.ToLower(string(body)), f) {
					t.Errorf("%s: %d error answer contains %q: %.300q", what, code, f, body)
				}
			}
		}
		return code >= 200 && code <= 299
	}

	for _, c := range cases {
		what := fmt.Sprintf("%s %.80s [%s]", c.method, c.path, c.name)
		code, hdr, body := send(c.method, c.path, c.ctype, c.body)
		if check(what, c, code, hdr, body) && c.effect != effNone {
			eff, times, _ := strings.Cut(c.effect, "*")
			k, _ := strconv.Atoi(times)
			want[eff] += max(k, 1)
		}
		// The server keeps serving, and nothing was half written.
		if code, _, body := send("POST", "/query", "application/json", validQuery); code != 200 {
			t.Fatalf("after %s: a valid query got %d %.300s", what, code, body)
		}
		for k, v := range counts() {
			if v != want[k] {
				t.Errorf("after %s: %d of %s, want %d (half written or refused)", what, v, k, want[k])
				want[k] = v // report each case once
			}
		}
	}
	sequential := requests

	// Concurrent: valid and hostile requests at once, from several clients.
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		written = map[string]int{}
		errs    []string
	)
	type creq struct {
		path, body string
		want       expect
		effect     string
	}
	const workers, rounds = 8, 15
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				id := fmt.Sprintf("c-%d-%d", w, r)
				for _, q := range []creq{
					{"/ingest", `{"collection": "manifests", "documents": [{"id": "` + id + `", "text": "kind: Deployment name: api-` + id + `"}]}`, ok, cortex.CollectionManifest},
					{"/ingest", `{"collection": "manifests", "documents": [{"id": "` + id + `-a", "text": "x"}, {"id": "` + id + `-b", "text": ""}]}`, bad, ""},
					{"/ingest", `{"collection": "manifests", "documents": [{"id": "` + id + `-c", "text": "x"}]}}`, bad, ""},
					{"/outcomes", `{"action": "restart shop/api-` + id + `", "outcome": "succeeded", "when": "9999-01-01T00:00:00Z"}`, bad, ""},
					{"/outcomes", `{"action": "restart shop/api-` + id + `", "outcome": "succeeded"}`, ok, cortex.CollectionChat},
					{"/query", string(validQuery), ok, ""},
					{"/query", `{"query": "x", "top_k": 1e300}`, bad, ""},
					{"/risk", `{"action": "delete namespace ` + id + `", "arguments": ` + strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000) + `}`, bad, ""},
					{"/risk", `{"action": "delete namespace ` + id + `"}`, ok, ""},
					{"/report", `{"cluster": "prod"}`, ok, ""},
					{"/known-errors/ke-1/solutions/sol-1", ``, ok, ""},
					{"/solutions/sol-1/verify", `{"verified": "yes"}`, bad, ""},
				} {
					req, _ := http.NewRequest("POST", srv.URL+q.path, strings.NewReader(q.body))
					req.Header.Set("Content-Type", "application/json")
					resp, err := hc.Do(req)
					if err != nil {
						mu.Lock()
						errs = append(errs, err.Error())
						mu.Unlock()
						return
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					okay := resp.StatusCode >= 200 && resp.StatusCode <= 299
					mu.Lock()
					requests++
					if okay != (q.want == ok) || resp.StatusCode >= 500 || !okay && len(b) >= 2048 {
						errs = append(errs, fmt.Sprintf("POST %s %.100s: %d %.300s; want %s", q.path, q.body, resp.StatusCode, b, q.want))
					}
					if okay && q.effect != "" {
						written[q.effect]++
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	for _, e := range errs {
		t.Error("concurrent: " + e)
	}
	for k, v := range written {
		want[k] += v
	}
	if written[cortex.CollectionManifest] != workers*rounds || written[cortex.CollectionChat] != workers*rounds {
		t.Errorf("concurrent valid writes: %v, want %d each", written, workers*rounds)
	}
	got := counts()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("in the end: %d of %s, want %d", got[k], k, v)
		}
	}
	t.Logf("documents and graph at the end: %v", got)

	// No 5xx was ever answered, no panic logged.
	_, _, metrics := send("GET", "/metrics", "", nil)
	if bytes.Contains(metrics, []byte(`code="5`)) {
		t.Errorf("the server answered a 5xx: %s", metrics)
	}
	if l := logs.String(); strings.Contains(l, "panic") || strings.Contains(l, "level=ERROR") {
		t.Errorf("server log:\n%.3000s", l)
	}
	t.Logf("%d hostile cases, %d requests (%d sequential, each followed by a valid query), %s",
		len(cases), requests, sequential, time.Since(start).Round(time.Millisecond))
}
