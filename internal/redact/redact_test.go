package redact

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	cases := []struct {
		in     string
		secret string
		keep   string
	}{
		{"db password=hunter2 host=db", "hunter2", "host=db"},
		{`{"password":"hunter2","user":"bob"}`, "hunter2", `"user":"bob"`},
		{"Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abcdefgh", "eyJhbGciOiJIUzI1NiJ9", "Authorization"},
		{"connecting to postgres://immich:s3cr3tpw@db:5432/immich", "s3cr3tpw", "db:5432/immich"},
		{"AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY done", "wJalrXUtnFEMI", "done"},
		{"key AKIAIOSFODNN7EXAMPLE used", "AKIAIOSFODNN7EXAMPLE", "used"},
		{"token: glpat-abcdefghijklmnopqrst", "glpat-abcdefghijklmnopqrst", "token"},
		{"-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----", "MIIEpAIBAAKCAQEA", "BEGIN"},
		{"api_key = 'abc123def456'", "abc123def456", "api_key"},
		{"client_secret: x9y8z7w6", "x9y8z7w6", "client_secret"},
		{"ordinary log line: GET /healthz 200 3ms", "", "GET /healthz 200 3ms"},
		{"exec: pg_dump --password hunter2 --host db", "hunter2", "--host db"},
		{"env PGPASSWORD s3cr3t psql -h db", "s3cr3t", "psql -h db"},
		{"Authorization: Token abcdef0123456789 sent", "abcdef0123456789", "sent"},
	}
	for _, c := range cases {
		got := String(c.in)
		if c.secret != "" && strings.Contains(got, c.secret) {
			t.Errorf("String(%q) = %q still holds %q", c.in, got, c.secret)
		}
		if !strings.Contains(got, c.keep) {
			t.Errorf("String(%q) = %q lost %q", c.in, got, c.keep)
		}
	}
}

func TestValue(t *testing.T) {
	v := Value(map[string]any{
		"token": "abc", "name": "immich",
		"nested": []any{map[string]any{"db_password": "p"}, "Bearer abcdefghijklmnop"},
	}).(map[string]any)
	if v["token"] != Mask || v["name"] != "immich" {
		t.Fatalf("top level: %v", v)
	}
	n := v["nested"].([]any)
	if n[0].(map[string]any)["db_password"] != Mask || strings.Contains(n[1].(string), "abcdefghijklmnop") {
		t.Fatalf("nested: %v", n)
	}
}

func TestHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(NewHandler(slog.NewJSONHandler(&buf, nil)))
	log.With("auth_token", "tok-123456").Info("login with password=hunter2",
		"dsn", "postgres://u:pw123456@h/db", "err", errors.New("bad Bearer abcdefghijkl"),
		slog.Group("g", "secret", "s3"))
	out := buf.String()
	if Contains(out, "tok-123456", "hunter2", "pw123456", "abcdefghijkl", `"s3"`) {
		t.Fatalf("secret leaked into log: %s", out)
	}
}

func TestProseSurvives(t *testing.T) {
	for _, s := range []string{
		"refusing to listen without authentication: anyone who can reach it could operate the cluster",
		"the token expired; fetch a new one",
		"retrying with a fresh token in 5s",
		"mount --bind /data /mnt",
	} {
		if got := String(s); got != s {
			t.Errorf("String(%q) = %q", s, got)
		}
	}
}

func TestLinesMasksKeysAcrossLines(t *testing.T) {
	in := []string{
		"starting server",
		"loaded key: -----BEGIN OPENSSH PRIVATE KEY-----",
		"b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ",
		"AAAAMwAAAAtzc2gtZWQyNTUxOQAAACBoZXJlaXNhc2Vj",
		"-----END OPENSSH PRIVATE KEY----- password=hunter2",
		"listening on :8080",
	}
	got := Lines(append([]string(nil), in...))
	joined := strings.Join(got, "\n")
	for _, secret := range []string{"b3BlbnNzaC1rZXkt", "AAAAMwAAAAtzc2gt", "hunter2"} {
		if strings.Contains(joined, secret) {
			t.Errorf("Lines leaked %q:\n%s", secret, joined)
		}
	}
	for _, keep := range []string{"starting server", "loaded key:", "listening on :8080"} {
		if !strings.Contains(joined, keep) {
			t.Errorf("Lines lost %q:\n%s", keep, joined)
		}
	}
	if len(got) != len(in) {
		t.Errorf("%d lines out of %d", len(got), len(in))
	}
	// An unterminated key masks to the end.
	got = Lines([]string{"-----BEGIN PRIVATE KEY-----", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"})
	if strings.Contains(strings.Join(got, "\n"), "MIIEvQIBADAN") {
		t.Errorf("unterminated key leaked: %q", got)
	}
}
