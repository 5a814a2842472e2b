package loader

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, dir, name, body string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadManifests(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "apps/authentik/deploy.yaml", `apiVersion: apps/v1
kind: Deployment
metadata:
  name: authentik-server
  namespace: authentik
spec:
  replicas: 2
  template:
    spec:
      containers:
      - name: server
        image: ghcr.io/goauthentik/server:2025.2
---
apiVersion: v1
kind: Service
metadata:
  name: authentik
  namespace: authentik
---
`)
	write(t, dir, "apps/kustomization.yaml", "resources:\n- authentik/deploy.yaml\n")
	write(t, dir, ".git/config.yaml", "kind: Secret\nmetadata:\n  name: nope\n")
	write(t, dir, "README.md", "# not yaml")
	res, err := LoadManifests(dir, "prod")
	if err != nil {
		t.Fatal(err)
	}
	docs := res.Documents
	if len(docs) != 2 {
		t.Fatalf("got %d documents: %+v", len(docs), docs)
	}
	d := docs[0]
	if d.ID != "prod:Deployment/authentik/authentik-server" || d.Cluster != "prod" || d.Metadata["namespace"] != "authentik" || d.Metadata["path"] != "apps/authentik/deploy.yaml" {
		t.Fatalf("doc %+v", d)
	}
	if !strings.HasPrefix(d.Text, "Deployment authentik-server in namespace authentik (file apps/authentik/deploy.yaml); replicas 2; images ghcr.io/goauthentik/server:2025.2\n") {
		t.Fatalf("text %q", d.Text)
	}
	write(t, dir, "broken.yaml", "kind: [unclosed\n")
	if _, err := LoadManifests(dir, "prod"); err == nil || !strings.Contains(err.Error(), "broken.yaml") {
		t.Fatalf("broken yaml: %v", err)
	}
	if _, err := LoadManifests(filepath.Join(dir, "missing"), "prod"); err == nil {
		t.Fatal("missing dir accepted")
	}
}

func TestLoadManifestsLeavesSecretsOut(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "apps/db.yaml", `apiVersion: v1
kind: Secret
metadata:
  name: db-credentials
  namespace: db
stringData:
  password: hunter2-plain
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: db-config
  namespace: db
data:
  DATABASE_URL: postgres://app:s3cr3t-in-url@db:5432/app
  api_token: tok-visible-in-config
  log_level: debug
`)
	write(t, dir, "apps/db.sops.yaml", `apiVersion: v1
kind: ConfigMap
metadata:
  name: encrypted-config
  namespace: db
data:
  key: ENC[AES256_GCM,data:abc=,type:str]
sops:
  version: 3.8.1
  age:
  - recipient: age1xyz
`)
	res, err := LoadManifests(dir, "prod")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Documents) != 1 || res.Documents[0].ID != "prod:ConfigMap/db/db-config" {
		t.Fatalf("documents %+v", res.Documents)
	}
	if res.SkippedSecrets != 1 || res.SkippedSOPS != 1 {
		t.Fatalf("skipped %d secrets and %d SOPS files, want 1 and 1", res.SkippedSecrets, res.SkippedSOPS)
	}
	text := res.Documents[0].Text
	for _, leak := range []string{"hunter2-plain", "s3cr3t-in-url", "tok-visible-in-config", "ENC[AES256_GCM"} {
		if strings.Contains(text, leak) {
			t.Errorf("stored text leaks %q:\n%s", leak, text)
		}
	}
	if !strings.Contains(text, "log_level: debug") {
		t.Errorf("masking ate the harmless values:\n%s", text)
	}
}

func TestLoadDocsSplitsAtHeadings(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "runbooks/oom.md", "# OOMKilled\nIntro text.\n\n## Symptoms\nPods restart with exit code 137.\n\n```sh\n# not a heading\nkubectl top pod\n```\n## Fix\n### Raise the limit\nEdit resources.limits.memory.\n## Fix\nsecond fix section\n")
	res, err := LoadDocs(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	docs := res.Documents
	var ids []string
	for _, d := range docs {
		ids = append(ids, d.ID)
	}
	want := []string{"runbooks/oom.md#oomkilled", "runbooks/oom.md#oomkilled-symptoms", "runbooks/oom.md#oomkilled-fix-raise-the-limit", "runbooks/oom.md#oomkilled-fix"}
	if strings.Join(ids, ",") != strings.Join(want, ",") {
		t.Fatalf("ids %v, want %v", ids, want)
	}
	if !strings.Contains(docs[1].Text, "# not a heading") || !strings.HasPrefix(docs[1].Text, "OOMKilled > Symptoms\n") {
		t.Fatalf("symptoms text %q", docs[1].Text)
	}
	if docs[2].Metadata["title"] != "OOMKilled" || docs[2].Metadata["section"] != "OOMKilled > Fix > Raise the limit" {
		t.Fatalf("metadata %v", docs[2].Metadata)
	}
}
