package gitops

import (
	"errors"
	"path"
	"strings"
	"testing"
)

func TestNormalizePath(t *testing.T) {
	g := Guard{AllowedDirs: []string{"clusters/", "apps"}}
	good := map[string]string{
		"clusters/prod/app.yaml":       "clusters/prod/app.yaml",
		"clusters//prod/./app.yaml":    "clusters/prod/app.yaml",
		"./clusters/prod/app.yaml":     "clusters/prod/app.yaml",
		"apps/x/kustomization.yaml":    "apps/x/kustomization.yaml",
		"clusters/a/.sops.yaml":        "clusters/a/.sops.yaml",
		"clusters/a/v1.2_x-y@z+w.json": "clusters/a/v1.2_x-y@z+w.json",
	}
	for in, want := range good {
		got, err := g.NormalizePath(in)
		if err != nil || got != want {
			t.Errorf("NormalizePath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := []string{
		"", "/clusters/a.yaml", "clusters/../etc/passwd", "../clusters/a.yaml",
		"clusters/a/../../b.yaml", "clusters", "clusters/", "clusters/a/",
		"clusterz/a.yaml", "clustersx/a.yaml", "apps", "README.md",
		"clusters/.git/config", "clusters/.GIT/hooks/x", ".git/config",
		`clusters\a.yaml`, "C:/clusters/a.yaml", "clusters/a b.yaml",
		"clusters/a\x00.yaml", "clusters/a\n.yaml", "clusters/ä.yaml",
		"clusters/$(id).yaml", "clusters/*.yaml", "~/clusters/a.yaml",
		strings.Repeat("clusters/a", 100),
	}
	for _, in := range bad {
		if got, err := g.NormalizePath(in); err == nil {
			t.Errorf("NormalizePath(%q) = %q, want error", in, got)
		} else if !errors.Is(err, ErrInvalid) {
			t.Errorf("NormalizePath(%q) error %v is not ErrInvalid", in, err)
		}
	}
	// The zero Guard allows clusters/ only.
	if _, err := (Guard{}).NormalizePath("apps/a.yaml"); err == nil || !strings.Contains(err.Error(), "clusters/") {
		t.Errorf("zero Guard: %v", err)
	}
	if got, err := (Guard{AllowedDirs: []string{"."}}).NormalizePath("README.md"); err != nil || got != "README.md" {
		t.Errorf("whole-repo Guard: %q %v", got, err)
	}
}

func TestValidate(t *testing.T) {
	g := Guard{MaxBytes: 100}
	ok := Change{Operation: OpCreate, Path: "clusters/a.yaml", Content: "a: 1\n---\nb: [2]\n", Message: "add a", TaskID: "task-1"}
	if err := g.Validate(ok); err != nil {
		t.Fatalf("valid change refused: %v", err)
	}
	cases := map[string]func(c *Change){
		"read":           func(c *Change) { c.Operation = OpRead },
		"unknown op":     func(c *Change) { c.Operation = "rename" },
		"bad yaml":       func(c *Change) { c.Content = "a: [1\n" },
		"bad 2nd doc":    func(c *Change) { c.Content = "a: 1\n---\nb: : :\n" },
		"too big":        func(c *Change) { c.Content = "a: " + strings.Repeat("x", 100) },
		"no task":        func(c *Change) { c.TaskID = "" },
		"task newline":   func(c *Change) { c.TaskID = "t1\nSigned-off-by: x" },
		"no message":     func(c *Change) { c.Message = "  \n" },
		"ctl message":    func(c *Change) { c.Message = "a\x1b[31m" },
		"unnormalized":   func(c *Change) { c.Path = "clusters//a.yaml" },
		"outside":        func(c *Change) { c.Path = "etc/a.yaml" },
		"binary":         func(c *Change) { c.Path = "clusters/a.txt"; c.Content = "a\x00b" },
		"bad utf8":       func(c *Change) { c.Path = "clusters/a.txt"; c.Content = "\xff" },
		"bad json":       func(c *Change) { c.Path = "clusters/a.json"; c.Content = `{"a":` },
		"delete w/ body": func(c *Change) { c.Operation = OpDelete },
	}
	for name, mutate := range cases {
		c := ok
		mutate(&c)
		if err := g.Validate(c); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Validate = %v, want ErrInvalid", name, err)
		}
	}
	del := Change{Operation: OpDelete, Path: "clusters/a.yaml", Message: "rm", TaskID: "t"}
	if err := g.Validate(del); err != nil {
		t.Errorf("delete refused: %v", err)
	}
}

func TestCommitMessage(t *testing.T) {
	g := Guard{MessagePrefix: "shepherd: "}
	got := g.CommitMessage(Change{Message: " scale web \n", TaskID: "t-42"})
	want := "shepherd: scale web\n\nShepherd-Task: t-42\n"
	if got != want {
		t.Errorf("CommitMessage = %q, want %q", got, want)
	}
	g.TrailerKey = "Approved-Task"
	if got := g.CommitMessage(Change{Message: "x", TaskID: "t"}); !strings.HasSuffix(got, "\n\nApproved-Task: t\n") {
		t.Errorf("custom trailer: %q", got)
	}
}

func TestParseOperation(t *testing.T) {
	for _, s := range []string{"read", "create", "update", "delete"} {
		if op, err := ParseOperation(s); err != nil || string(op) != s {
			t.Errorf("ParseOperation(%q) = %q, %v", s, op, err)
		}
	}
	if _, err := ParseOperation("DELETE"); err == nil {
		t.Error("ParseOperation accepted DELETE")
	}
}

// FuzzNormalizePath checks the normaliser's promises on any input: no panic,
// and an accepted path is clean, relative, inside an allowed dir, free of
// ".." and .git, and a fixed point.
func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"clusters/a.yaml", "clusters/../x", "/etc/passwd", "clusters//a/./b.yml", ".git/config", "clusters/.git", "apps/x"} {
		f.Add(s)
	}
	g := Guard{AllowedDirs: []string{"clusters", "apps/"}}
	f.Fuzz(func(t *testing.T, p string) {
		got, err := g.NormalizePath(p)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		if got != path.Clean(got) || strings.HasPrefix(got, "/") {
			t.Fatalf("%q -> %q is not clean and relative", p, got)
		}
		if !strings.HasPrefix(got, "clusters/") && !strings.HasPrefix(got, "apps/") {
			t.Fatalf("%q -> %q is outside the allowed dirs", p, got)
		}
		for _, part := range strings.Split(got, "/") {
			if part == ".." || part == "." || part == "" || strings.EqualFold(part, ".git") {
				t.Fatalf("%q -> %q has component %q", p, got, part)
			}
		}
		if again, err := g.NormalizePath(got); err != nil || again != got {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", p, got, again, err)
		}
	})
}
