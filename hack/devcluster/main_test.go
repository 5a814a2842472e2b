package main

import (
	"io"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "kc")
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"--kubeconfig-out", good}, ""},
		{[]string{"--kubeconfig-out", good, "--deployments", "1000", "--extra-pods", "5000"}, ""},
		{nil, "--kubeconfig-out is required"},
		{[]string{"--kubeconfig-out", dir}, "is a directory"},
		{[]string{"--kubeconfig-out", filepath.Join(dir, "missing", "kc")}, "does not exist"},
		{[]string{"--kubeconfig-out", good, "--deployments", "0"}, "must be between 1 and 10000"},
		{[]string{"--kubeconfig-out", good, "--extra-pods", "-1"}, "must be between 0 and 50000"},
		{[]string{"--kubeconfig-out", good, "extra"}, `unexpected argument "extra"`},
		{[]string{"--bogus"}, "flag provided but not defined"},
	} {
		_, err := parseFlags(tc.args, io.Discard)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.args, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: err %v, want %q", tc.args, err, tc.err)
		}
	}
}
