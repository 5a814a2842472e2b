// Package lexical is Cortex's built-in embedder. It is honest about what it
// is: a deterministic feature-hashing of words, word pairs, camelCase parts
// and character n-grams into a fixed-size vector. It knows no synonyms and no
// meaning; it gives dense search typo- and morphology-tolerant lexical
// matching (crashlooping ~ CrashLoopBackOff) with no model download. Use
// Ollama or an OpenAI-compatible endpoint for semantic embeddings.
package lexical

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"strings"
	"unicode"
)

// DefaultDim is the vector size: big enough that hash collisions are rare
// for texts of a few hundred words, small enough that an exact scan of 100k
// documents stays within a few milliseconds.
const DefaultDim = 256

// Embedder hashes text features into Dim dimensions; the zero value uses
// DefaultDim.
type Embedder struct {
	Dim int
}

// New returns an embedder with dim dimensions (DefaultDim when dim <= 0).
func New(dim int) *Embedder {
	if dim <= 0 {
		dim = DefaultDim
	}
	return &Embedder{Dim: dim}
}

// Name identifies the embedder and its size, so an index built with another
// one is recognised.
func (e *Embedder) Name() string { return fmt.Sprintf("lexical-v1-%d", e.dim()) }

// FusionHint weighs lexical vectors at 0.3 against BM25 with an RRF constant
// of 5. They see the same words BM25 sees, so at full weight their vote
// mostly duplicates BM25's with more noise: on the evaluation set (64
// incidents, internal/cortex/eval_test.go) equal-weight RRF with k=60 scored
// recall@5 0.789 against BM25's 0.867. k=5, weight 0.3 was the best setting
// on the even-numbered incidents (recall 0.891, MRR 0.961 against BM25's
// 0.875, 0.948); on the odd ones, held out, it ties BM25's recall (0.859)
// with MRR 0.875 against 0.891. A semantic embedder brings what BM25 cannot
// and keeps the defaults, k=60 and weight 1.
func (e *Embedder) FusionHint() (k int, denseWeight float64) { return 5, 0.3 }

func (e *Embedder) dim() int {
	if e == nil || e.Dim <= 0 {
		return DefaultDim
	}
	return e.Dim
}

// EmbedDocuments embeds each text; documents and queries are treated alike.
func (e *Embedder) EmbedDocuments(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	for i, t := range texts {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		v, err := e.embed(t)
		if err != nil {
			return nil, fmt.Errorf("text %d: %w", i, err)
		}
		out[i] = v
	}
	return out, nil
}

// EmbedQuery embeds one question.
func (e *Embedder) EmbedQuery(ctx context.Context, text string) ([]float32, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return e.embed(text)
}

// Feature weights: whole words carry the meaning, n-grams the tolerance.
const (
	wWord   = 1.0
	wPart   = 0.6
	wBigram = 0.5
	wGram   = 0.35
)

func (e *Embedder) embed(text string) ([]float32, error) {
	dim := e.dim()
	v := make([]float32, dim)
	add := func(feature string, w float64) {
		h := fnv.New64a()
		h.Write([]byte(feature))
		x := h.Sum64()
		sign := float32(1)
		if x>>63 == 1 {
			sign = -1
		}
		v[x%uint64(dim)] += sign * float32(w)
	}
	words := Tokens(text)
	counts := map[string]int{}
	for _, w := range words {
		counts[w.Stem]++
	}
	for w, n := range counts {
		add("w:"+w, wWord*(1+math.Log(float64(n))))
	}
	prev := ""
	for _, w := range words {
		for _, p := range w.Parts {
			add("w:"+p, wPart)
		}
		if prev != "" {
			add("b:"+prev+" "+w.Stem, wBigram)
		}
		prev = w.Stem
		grams := ngrams(w.Lower, 3)
		grams = append(grams, ngrams(w.Lower, 4)...)
		if len(grams) > 0 {
			// Spread a word's n-gram weight so long words don't drown short ones.
			gw := wGram * 4 / math.Max(4, float64(len(grams)))
			for _, g := range grams {
				add("g:"+g, gw)
			}
		}
	}
	if len(words) == 0 {
		// Punctuation-only text still deserves a vector: hash its bytes.
		t := strings.TrimSpace(text)
		if t == "" {
			return nil, errors.New("text is empty")
		}
		for _, g := range ngrams(t, 3) {
			add("r:"+g, 1)
		}
		if len(t) < 3 {
			add("r:"+t, 1)
		}
	}
	var sum float64
	for _, x := range v {
		sum += float64(x) * float64(x)
	}
	if sum == 0 {
		v[0] = 1 // every feature cancelled out; any fixed unit vector will do
		return v, nil
	}
	inv := float32(1 / math.Sqrt(sum))
	for i := range v {
		v[i] *= inv
	}
	return v, nil
}

// Token is one word of a text: lower-cased, stemmed, and split at camelCase
// boundaries (CrashLoopBackOff → crash, loop, back, off).
type Token struct {
	Lower string
	Stem  string
	Parts []string
}

// Tokens splits text into words of letters and digits, dropping stopwords.
func Tokens(text string) []Token {
	var out []Token
	for _, raw := range strings.FieldsFunc(text, func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	}) {
		lower := strings.ToLower(raw)
		if Stopword(lower) || len(lower) > 64 {
			continue
		}
		t := Token{Lower: lower, Stem: Stem(lower)}
		if parts := camelParts(raw); len(parts) > 1 {
			for _, p := range parts {
				if s := Stem(strings.ToLower(p)); s != t.Stem && len(s) > 1 {
					t.Parts = append(t.Parts, s)
				}
			}
		}
		out = append(out, t)
	}
	return out
}

// Stem strips the commonest English suffixes so restarting, restarted and
// restarts meet restart; it is deliberately crude and predictable.
func Stem(w string) string {
	n := len(w)
	switch {
	case n > 5 && strings.HasSuffix(w, "ing"):
		w = w[:n-3]
		if l := len(w); l > 2 && w[l-1] == w[l-2] && !strings.ContainsRune("aeiouls", rune(w[l-1])) {
			w = w[:l-1] // running → run
		}
		return w
	case n > 4 && strings.HasSuffix(w, "ies"):
		return w[:n-3] + "y"
	case n > 4 && strings.HasSuffix(w, "ed"):
		return w[:n-2]
	case n > 4 && strings.HasSuffix(w, "es") && strings.ContainsRune("sxz", rune(w[n-3])):
		return w[:n-2]
	case n > 3 && strings.HasSuffix(w, "s") && !strings.HasSuffix(w, "ss") && !strings.HasSuffix(w, "us"):
		return w[:n-1]
	}
	return w
}

func camelParts(s string) []string {
	var parts []string
	start := 0
	r := []rune(s)
	for i := 1; i < len(r); i++ {
		lowerToUpper := unicode.IsLower(r[i-1]) && unicode.IsUpper(r[i])
		acronymEnd := i+1 < len(r) && unicode.IsUpper(r[i-1]) && unicode.IsUpper(r[i]) && unicode.IsLower(r[i+1])
		digitEdge := unicode.IsDigit(r[i-1]) != unicode.IsDigit(r[i])
		if lowerToUpper || acronymEnd || digitEdge {
			parts = append(parts, string(r[start:i]))
			start = i
		}
	}
	return append(parts, string(r[start:]))
}

func ngrams(w string, n int) []string {
	r := []rune("<" + w + ">")
	if len(r) < n {
		return nil
	}
	out := make([]string, 0, len(r)-n+1)
	for i := 0; i+n <= len(r); i++ {
		out = append(out, string(r[i:i+n]))
	}
	return out
}

var stopwords = map[string]bool{}

func init() {
	for _, w := range strings.Fields(`a an and are as at be been but by can could did do does doing for from had has have how i
		if in into is it its of on or our so than that the their them then there these they this to was we were what
		when where which while who why will with would you your me my again keep keeps still just im pls please help
		during after before about any all also`) {
		stopwords[w] = true
	}
}

// Stopword reports whether w (lower case) carries no meaning for matching.
func Stopword(w string) bool { return stopwords[w] }
