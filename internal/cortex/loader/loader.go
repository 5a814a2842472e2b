// Package loader turns a GitOps checkout into manifest documents and a
// folder of markdown runbooks into documentation documents, for
// `shepherd ingest manifests DIR` and `shepherd ingest docs DIR`.
package loader

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
	"github.com/cluster-shepherd/shepherd/internal/redact"
)

// MaxTextBytes caps one document's text so it stays under Cortex's limit.
const MaxTextBytes = 16 << 10

// Result is what a load found: the documents to ingest and what it left
// out on purpose, so the command can say so.
type Result struct {
	Documents []cortex.Document
	// SkippedSecrets counts Kubernetes Secret objects: their data is only
	// base64, and Cortex is shared with models and other clusters.
	SkippedSecrets int
	// SkippedSOPS counts SOPS-encrypted files (a top-level sops: key):
	// ciphertext helps no search, and the file's layout still leaks names.
	SkippedSOPS int
}

// LoadManifests returns one document per Kubernetes object in the YAML files
// under dir: id "<kind>/<namespace>/<name>" (unique per cluster), text a
// compact summary plus the object as YAML with secret-looking values masked.
// Secrets and SOPS-encrypted files are left out and counted. Files that are
// not Kubernetes YAML are skipped; a YAML syntax error names its file.
func LoadManifests(dir, cluster string) (Result, error) {
	var res Result
	err := walk(dir, []string{".yaml", ".yml"}, func(rel string, data []byte) error {
		parts := splitYAML(data)
		objs := make([]map[string]any, len(parts))
		for i, part := range parts {
			if err := yaml.Unmarshal(part, &objs[i]); err != nil {
				return fmt.Errorf("%s: document %d: %w", rel, i+1, err)
			}
			if _, ok := objs[i]["sops"]; ok {
				res.SkippedSOPS++
				return nil
			}
		}
		for i, obj := range objs {
			kind, _ := obj["kind"].(string)
			if kind == "Secret" {
				res.SkippedSecrets++
				continue
			}
			meta, _ := obj["metadata"].(map[string]any)
			name, _ := meta["name"].(string)
			if kind == "" || name == "" {
				continue // kustomization.yaml, values files, Helm templates
			}
			ns, _ := meta["namespace"].(string)
			id := kind + "/" + ns + "/" + name
			if cluster != "" {
				id = cluster + ":" + id
			}
			text := redact.String(summary(kind, ns, name, rel, obj) + "\n" + strings.TrimSpace(string(parts[i])))
			res.Documents = append(res.Documents, cortex.Document{
				ID:      id,
				Cluster: cluster,
				Text:    cut(text, MaxTextBytes),
				Metadata: map[string]string{"kind": "manifest", "object_kind": kind, "namespace": ns, "name": name,
					"path": rel, "source": rel},
			})
		}
		return nil
	})
	if err != nil {
		return Result{}, err
	}
	// Overlays repeat objects; the later file in walk order wins.
	res.Documents = dedupe(res.Documents)
	return res, nil
}

func dedupe(docs []cortex.Document) []cortex.Document {
	last := map[string]int{}
	for i, d := range docs {
		last[d.ID] = i
	}
	var out []cortex.Document
	for i, d := range docs {
		if last[d.ID] == i {
			out = append(out, d)
		}
	}
	return out
}

// summary is the line a search should match first: what the object is and
// the few fields operators ask about.
func summary(kind, ns, name, rel string, obj map[string]any) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", kind, name)
	if ns != "" {
		fmt.Fprintf(&b, " in namespace %s", ns)
	}
	fmt.Fprintf(&b, " (file %s)", rel)
	spec, _ := obj["spec"].(map[string]any)
	if r, ok := spec["replicas"]; ok {
		fmt.Fprintf(&b, "; replicas %v", r)
	}
	var images []string
	collectImages(obj, &images)
	if len(images) > 0 {
		sort.Strings(images)
		fmt.Fprintf(&b, "; images %s", strings.Join(images, ", "))
	}
	return b.String()
}

func collectImages(v any, out *[]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			if s, ok := c.(string); ok && k == "image" {
				*out = append(*out, s)
				continue
			}
			collectImages(c, out)
		}
	case []any:
		for _, c := range x {
			collectImages(c, out)
		}
	}
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

func splitYAML(data []byte) [][]byte {
	var out [][]byte
	for _, p := range docSep.Split(string(data), -1) {
		if len(bytes.TrimSpace([]byte(p))) > 0 {
			out = append(out, []byte(p))
		}
	}
	return out
}

var heading = regexp.MustCompile(`^(#{1,3})\s+(.+?)\s*#*\s*$`)

// LoadDocs splits the markdown files under dir at their headings (levels 1
// to 3), one document per section, so a hit cites the passage that answers
// rather than a whole runbook. Id "<path>#<slug>", text "Title > Section"
// then the body.
func LoadDocs(dir, cluster string) (Result, error) {
	var docs []cortex.Document
	err := walk(dir, []string{".md", ".markdown"}, func(rel string, data []byte) error {
		var (
			title   string
			trail   [4]string
			body    strings.Builder
			inFence bool
			slugs   = map[string]int{}
		)
		flush := func() {
			text := strings.TrimSpace(body.String())
			body.Reset()
			if text == "" {
				return
			}
			var path []string
			for _, t := range trail[1:] {
				if t != "" {
					path = append(path, t)
				}
			}
			head := strings.Join(path, " > ")
			slug := slugify(head)
			if slug == "" {
				slug = "intro"
			}
			if n := slugs[slug]; n > 0 {
				slugs[slug]++
				slug = fmt.Sprintf("%s-%d", slug, n)
			} else {
				slugs[slug] = 1
			}
			if head != "" {
				text = head + "\n" + text
			}
			docs = append(docs, cortex.Document{
				ID: rel + "#" + slug, Cluster: cluster, Text: cut(text, MaxTextBytes),
				Metadata: map[string]string{"kind": "runbook", "path": rel, "title": title, "section": head, "source": rel + "#" + slug},
			})
		}
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "```") || strings.HasPrefix(strings.TrimSpace(line), "~~~") {
				inFence = !inFence
			}
			if m := heading.FindStringSubmatch(line); m != nil && !inFence {
				flush()
				level := len(m[1])
				trail[level] = m[2]
				for l := level + 1; l < len(trail); l++ {
					trail[l] = ""
				}
				if level == 1 && title == "" {
					title = m[2]
				}
				continue
			}
			body.WriteString(line)
			body.WriteByte('\n')
		}
		flush()
		return nil
	})
	return Result{Documents: docs}, err
}

var nonSlug = regexp.MustCompile(`[^a-z0-9]+`)

func slugify(s string) string {
	return strings.Trim(nonSlug.ReplaceAllString(strings.ToLower(s), "-"), "-")
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && (s[n]&0xC0) == 0x80 {
		n--
	}
	return s[:n]
}

// walk calls fn for each file under dir with one of exts, in lexical order,
// skipping hidden directories (.git).
func walk(dir string, exts []string, fn func(rel string, data []byte) error) error {
	info, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("load %s: %w", dir, err)
	}
	if !info.IsDir() {
		return fmt.Errorf("load %s: not a directory", dir)
	}
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("load %s: %w", path, err)
		}
		if d.IsDir() {
			if path != dir && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		ok := false
		for _, e := range exts {
			ok = ok || strings.EqualFold(filepath.Ext(path), e)
		}
		if !ok {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("load %s: %w", path, err)
		}
		rel, _ := filepath.Rel(dir, path)
		return fn(filepath.ToSlash(rel), data)
	})
}
