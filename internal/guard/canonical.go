package guard

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Canonical returns the key an authorization is bound to and the canonical
// JSON of args: keys sorted, numbers in one spelling (3, 3.0 and "3" as a
// json.Number are the same call), null-valued keys dropped. Defaults must be
// applied by the caller first, so that "kind omitted" and "kind: Deployment"
// are the same call only when the tool says so.
func Canonical(tool string, args map[string]any) (key string, canonicalJSON string, err error) {
	tool = strings.TrimSpace(tool)
	if tool == "" {
		return "", "", fmt.Errorf("canonical: tool name is empty")
	}
	norm, err := normalize(map[string]any(args), 0)
	if err != nil {
		return "", "", fmt.Errorf("canonical %s: %w", tool, err)
	}
	if norm == nil {
		norm = map[string]any{}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(norm); err != nil {
		return "", "", fmt.Errorf("canonical %s: %w", tool, err)
	}
	cj := strings.TrimSuffix(buf.String(), "\n")
	sum := sha256.Sum256([]byte(tool + "\x00" + cj))
	return tool + ":" + hex.EncodeToString(sum[:16]), cj, nil
}

// maxDepth bounds recursion so that hostile arguments cannot exhaust the stack.
const maxDepth = 32

func normalize(v any, depth int) (any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("arguments nested deeper than %d levels", maxDepth)
	}
	switch x := v.(type) {
	case nil:
		return nil, nil
	case map[string]any:
		if x == nil {
			return nil, nil
		}
		out := make(map[string]any, len(x))
		for k, val := range x {
			n, err := normalize(val, depth+1)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			if n == nil {
				continue
			}
			out[k] = n
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, val := range x {
			n, err := normalize(val, depth+1)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			out[i] = n
		}
		return out, nil
	case []string:
		out := make([]any, len(x))
		for i, s := range x {
			out[i] = s
		}
		return out, nil
	case string, bool:
		return x, nil
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return nil, fmt.Errorf("bad number %q", string(x))
		}
		return number(f)
	case float64:
		return number(x)
	case float32:
		return number(float64(x))
	case int:
		return number(float64(x))
	case int32:
		return number(float64(x))
	case int64:
		return number(float64(x))
	case uint:
		return number(float64(x))
	case uint32:
		return number(float64(x))
	case uint64:
		return number(float64(x))
	default:
		// Unknown Go types (structs from a typed handler) go through JSON once
		// so the key never depends on how the caller held the value.
		raw, err := json.Marshal(x)
		if err != nil {
			return nil, fmt.Errorf("unsupported value of type %T", v)
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var back any
		if err := dec.Decode(&back); err != nil {
			return nil, fmt.Errorf("unsupported value of type %T", v)
		}
		return normalize(back, depth+1)
	}
}

func number(f float64) (any, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("number is not finite")
	}
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return json.Number(strconv.FormatInt(int64(f), 10)), nil
	}
	return json.Number(strconv.FormatFloat(f, 'g', -1, 64)), nil
}

// decodeArgs turns canonical JSON back into a map for display and for Cortex.
func decodeArgs(canonicalJSON string) map[string]any {
	if canonicalJSON == "" {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(canonicalJSON))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil
	}
	return m
}
