package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func newFlags() (*pflag.FlagSet, *string, *int, *[]string, *bool) {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs.String(FileFlag, "", "")
	listen := fs.String("listen", "127.0.0.1:8080", "")
	max := fs.Int("max-response-bytes", 16384, "")
	tools := fs.StringSlice("disable-tools", nil, "")
	ro := fs.Bool("read-only", false, "")
	return fs, listen, max, tools, ro
}

func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.yaml")
	os.WriteFile(file, []byte("listen: 0.0.0.0:9000\nmax-response-bytes: 2048\ndisable-tools: [get_pod_logs, list_workloads]\nread-only: true\n"), 0o600)
	fs, listen, max, tools, ro := newFlags()
	t.Setenv("SHEPHERD_MAX_RESPONSE_BYTES", "4096")
	if err := fs.Parse([]string{"--config", file, "--read-only=false"}); err != nil {
		t.Fatal(err)
	}
	if err := Resolve(fs); err != nil {
		t.Fatal(err)
	}
	if *listen != "0.0.0.0:9000" {
		t.Errorf("file should set listen, got %s", *listen)
	}
	if *max != 4096 {
		t.Errorf("env should beat file, got %d", *max)
	}
	if *ro {
		t.Errorf("flag should beat file")
	}
	if strings.Join(*tools, ",") != "get_pod_logs,list_workloads" {
		t.Errorf("list from file: %v", *tools)
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("listen: [unclosed\n"), 0o600)
	unknown := filepath.Join(dir, "unknown.yaml")
	os.WriteFile(unknown, []byte("lisen: x\n"), 0o600)
	for _, c := range []struct {
		args      []string
		env, want string
	}{
		{[]string{"--config", bad}, "", "not valid YAML"},
		{[]string{"--config", unknown}, "", `unknown setting "lisen"`},
		{[]string{"--config", filepath.Join(dir, "missing.yaml")}, "", "read config file"},
		{nil, "abc", "SHEPHERD_MAX_RESPONSE_BYTES"},
	} {
		fs, _, _, _, _ := newFlags()
		if c.env != "" {
			t.Setenv("SHEPHERD_MAX_RESPONSE_BYTES", c.env)
		}
		fs.Parse(c.args)
		err := Resolve(fs)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got %v, want %q", c.args, err, c.want)
		}
	}
}

func TestReadSecret(t *testing.T) {
	f := filepath.Join(t.TempDir(), "tok")
	os.WriteFile(f, []byte("  s3cret\n"), 0o600)
	if s, err := ReadSecret(f, ""); err != nil || s != "s3cret" {
		t.Fatalf("%q %v", s, err)
	}
	t.Setenv("X_TOKEN", "fromenv")
	if s, _ := ReadSecret("", "X_TOKEN"); s != "fromenv" {
		t.Fatalf("%q", s)
	}
	empty := filepath.Join(t.TempDir(), "e")
	os.WriteFile(empty, nil, 0o600)
	if _, err := ReadSecret(empty, ""); err == nil {
		t.Fatal("empty secret file accepted")
	}
}

func TestLargeNumbersFromFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(file, []byte("max-response-bytes: 1048576\nratio: 0.25\n"), 0o600)
	fs, _, max, _, _ := newFlags()
	ratio := fs.Float64("ratio", 0, "")
	if err := fs.Parse([]string{"--config", file}); err != nil {
		t.Fatal(err)
	}
	if err := Resolve(fs); err != nil {
		t.Fatalf("a million from YAML: %v", err)
	}
	if *max != 1048576 || *ratio != 0.25 {
		t.Fatalf("got %d and %g", *max, *ratio)
	}
}
