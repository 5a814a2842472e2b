// Package nodes runs allowlisted diagnostic commands on cluster nodes over
// SSH: a command is parsed into argv without a shell, matched against an
// allowlist of argv patterns, and only then sent, quoted, to the node.
package nodes

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNotAllowed marks a command refused by the parser or the allowlist.
var ErrNotAllowed = errors.New("command not allowed")

const maxCommandLen = 1024

// Characters with a meaning to a shell. They are refused everywhere, even
// inside quotes: no allowlisted command needs them, and refusing them means
// the remote shell can never see anything but plain words.
const shellChars = "|;&<>$`\\(){}!*?[]#~\n\r"

// Parse splits a command line into argv the way a shell would split plain
// words, with '...' and "..." grouping words that contain spaces. Anything
// else a shell would interpret (pipes, redirections, ;, &&, backticks, $(),
// globs, escapes) is refused rather than interpreted.
func Parse(command string) ([]string, error) {
	if len(command) > maxCommandLen {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrNotAllowed, maxCommandLen)
	}
	var (
		argv    []string
		cur     strings.Builder
		inWord  bool
		quote   rune // 0, '\'' or '"'
		started int
	)
	for i, r := range command {
		switch {
		case r > 0x7e || (r < 0x20 && r != ' ' && r != '\t'):
			return nil, fmt.Errorf("%w: character %q at offset %d: only printable ASCII is accepted", ErrNotAllowed, r, i)
		case strings.ContainsRune(shellChars, r):
			return nil, fmt.Errorf("%w: %q at offset %d: commands run without a shell, so pipes, redirections, ;, &&, backticks, $() and globs are refused", ErrNotAllowed, r, i)
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord, started = r, true, i
		case r == ' ' || r == '\t':
			if inWord {
				argv = append(argv, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("%w: unterminated quote at offset %d", ErrNotAllowed, started)
	}
	if inWord {
		argv = append(argv, cur.String())
	}
	if len(argv) == 0 {
		return nil, fmt.Errorf("%w: the command is empty", ErrNotAllowed)
	}
	for _, a := range argv {
		if a == "" {
			return nil, fmt.Errorf("%w: empty argument", ErrNotAllowed)
		}
	}
	return argv, nil
}

// Quote returns argv as one string for a POSIX shell, every argument single
// quoted: sshd hands the command to the user's login shell, so this is what
// keeps an already allowlisted argv from being reinterpreted there.
func Quote(argv []string) string {
	parts := make([]string, len(argv))
	for i, a := range argv {
		parts[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(parts, " ")
}
