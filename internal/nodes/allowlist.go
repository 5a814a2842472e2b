package nodes

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Value says what a flag value or positional argument may be: a bounded
// integer, one of a fixed set of words, or a string matching a pattern.
type Value struct {
	Name     string // shown in usage, e.g. "UNIT"
	Min, Max int    // integer bounds; used when Int is true
	Int      bool
	OneOf    []string
	Pattern  *regexp.Regexp
}

func (v *Value) check(s string) error {
	switch {
	case v.Int:
		n, err := strconv.Atoi(s)
		if err != nil || n < v.Min || n > v.Max {
			return fmt.Errorf("%s must be a number from %d to %d, not %q", v.Name, v.Min, v.Max, s)
		}
	case len(v.OneOf) > 0:
		for _, w := range v.OneOf {
			if s == w {
				return nil
			}
		}
		return fmt.Errorf("%s must be one of %s, not %q", v.Name, strings.Join(v.OneOf, "|"), s)
	case v.Pattern != nil:
		// Patterns start with an alphanumeric where a leading dash would let
		// a value pose as a flag to the program.
		if !v.Pattern.MatchString(s) {
			return fmt.Errorf("%s %q is not accepted", v.Name, s)
		}
	default:
		return fmt.Errorf("%s: no value accepted", v.Name)
	}
	return nil
}

// Flag is an allowed option; Names lists its spellings ("-n", "--lines").
// Value nil means a boolean flag. A name without a dash is a keyword that
// takes a value, as in "ip addr show dev eth0".
type Flag struct {
	Names    []string
	Value    *Value
	Required bool
}

// Arg is one positional argument, matched in order.
type Arg struct {
	Value    *Value
	Optional bool
}

// Command is one allowed argv pattern.
type Command struct {
	Program string
	Args    []Arg
	Flags   []Flag
	// Usage is the pattern as shown to the model; Doc says what it is for.
	Usage string
	Doc   string
}

// Allowlist is the set of commands run_node_cmd accepts.
type Allowlist struct {
	Commands []Command
}

func oneOf(name string, words ...string) *Value { return &Value{Name: name, OneOf: words} }
func intRange(name string, lo, hi int) *Value   { return &Value{Name: name, Int: true, Min: lo, Max: hi} }
func pattern(name, re string) *Value            { return &Value{Name: name, Pattern: regexp.MustCompile(re)} }
func boolFlags(names ...string) []Flag {
	out := make([]Flag, len(names))
	for i, n := range names {
		out[i] = Flag{Names: []string{n}}
	}
	return out
}

var (
	unitValue  = pattern("UNIT", `^[A-Za-z0-9][A-Za-z0-9@._:-]{0,127}$`)
	sinceValue = pattern("TIME", `^(today|yesterday|now|-?[0-9]{1,4} ?(s|sec|seconds?|m|min|minutes?|h|hours?|d|days?)( ago)?|[0-9]{4}-[0-9]{2}-[0-9]{2}( [0-9]{2}:[0-9]{2}(:[0-9]{2})?)?)$`)
	prioValue  = oneOf("PRIORITY", "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug", "0", "1", "2", "3", "4", "5", "6", "7")
	ifaceValue = pattern("IFACE", `^[A-Za-z0-9][A-Za-z0-9._@-]{0,14}$`)
)

// DefaultAllowlist returns the read-only diagnostics a node command may run.
// Every entry only reads state, and every potentially long output is bounded
// (journalctl needs -n) so a command cannot load the node.
func DefaultAllowlist() *Allowlist {
	return &Allowlist{Commands: []Command{
		{Program: "df", Flags: boolFlags("-h", "-i", "-T", "-l", "-P"),
			Usage: "df [-h] [-i] [-T] [-l] [-P]", Doc: "disk space and inodes per filesystem"},
		{Program: "free", Flags: boolFlags("-h", "-m", "-g", "-k", "-b", "-w", "-t"),
			Usage: "free [-h|-m|-g|-k|-b] [-w] [-t]", Doc: "memory and swap"},
		{Program: "uptime", Flags: boolFlags("-p", "-s"),
			Usage: "uptime [-p] [-s]", Doc: "uptime and load averages"},
		{Program: "nproc", Usage: "nproc", Doc: "number of CPUs"},
		{Program: "hostname", Usage: "hostname", Doc: "the node's hostname"},
		{Program: "uname", Flags: boolFlags("-a", "-r", "-m", "-s", "-n", "-v"),
			Usage: "uname [-a] [-r] [-m] [-s] [-n] [-v]", Doc: "kernel version and architecture"},
		{Program: "journalctl", Flags: []Flag{
			{Names: []string{"-n", "--lines"}, Value: intRange("N", 1, 1000), Required: true},
			{Names: []string{"-u", "--unit"}, Value: unitValue},
			{Names: []string{"--since", "-S"}, Value: sinceValue},
			{Names: []string{"--until", "-U"}, Value: sinceValue},
			{Names: []string{"-p", "--priority"}, Value: prioValue},
			{Names: []string{"-o", "--output"}, Value: oneOf("FORMAT", "short", "short-iso", "short-precise", "cat")},
			{Names: []string{"-k", "--dmesg"}}, {Names: []string{"-b", "--boot"}},
			{Names: []string{"--no-pager"}}, {Names: []string{"-q", "--quiet"}}, {Names: []string{"-r", "--reverse"}},
		}, Usage: `journalctl -n N(1-1000) [-u UNIT] [--since TIME] [--until TIME] [-p PRIORITY] [-o short|short-iso|short-precise|cat] [-k] [-b] [-r] [-q] [--no-pager]`,
			Doc: `system journal; TIME is "today", "yesterday", "-1h", "30 min ago" or "YYYY-MM-DD[ HH:MM[:SS]]"`},
		{Program: "systemctl", Args: []Arg{{Value: oneOf("status", "status")}, {Value: unitValue}},
			Flags: []Flag{{Names: []string{"-n", "--lines"}, Value: intRange("N", 0, 200)}, {Names: []string{"--no-pager"}}, {Names: []string{"-l", "--full"}}},
			Usage: "systemctl status UNIT [-n N(0-200)] [-l] [--no-pager]", Doc: "state and recent log of one unit"},
		{Program: "systemctl", Args: []Arg{{Value: oneOf("VERB", "is-active", "is-failed", "is-enabled")}, {Value: unitValue}},
			Usage: "systemctl is-active|is-failed|is-enabled UNIT", Doc: "one word about a unit"},
		{Program: "systemctl", Args: []Arg{{Value: oneOf("list-units", "list-units")}},
			Flags: []Flag{{Names: []string{"--failed"}, Required: true}, {Names: []string{"--no-pager"}}},
			Usage: "systemctl list-units --failed [--no-pager]", Doc: "failed units"},
		{Program: "crictl", Args: []Arg{{Value: oneOf("ps", "ps")}},
			Flags: []Flag{{Names: []string{"-a", "--all"}}, {Names: []string{"--name"}, Value: pattern("NAME", `^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)},
				{Names: []string{"--state"}, Value: oneOf("STATE", "created", "running", "exited", "unknown")}},
			Usage: "crictl ps [-a] [--name NAME] [--state created|running|exited|unknown]", Doc: "containers known to the runtime"},
		{Program: "crictl", Args: []Arg{{Value: oneOf("pods|images", "pods", "images")}},
			Usage: "crictl pods | crictl images", Doc: "pod sandboxes or images on the node"},
		{Program: "ip", Args: []Arg{{Value: oneOf("OBJECT", "addr", "address", "a", "link", "l", "route", "r")}, {Value: oneOf("show", "show"), Optional: true}},
			Flags: []Flag{{Names: []string{"-br", "-brief"}}, {Names: []string{"-4"}}, {Names: []string{"-6"}}, {Names: []string{"-s"}},
				{Names: []string{"dev"}, Value: ifaceValue}},
			Usage: "ip [-br] [-4|-6] [-s] addr|link|route [show] [dev IFACE]", Doc: "addresses, links and routes"},
		{Program: "ss", Flags: boolFlags("-t", "-u", "-l", "-n", "-a", "-p", "-s", "-x"),
			Usage: "ss [-t] [-u] [-x] [-l] [-a] [-n] [-p] [-s]", Doc: "sockets (combined forms like -tlnp work)"},
		{Program: "ps", Args: []Arg{{Value: oneOf("aux", "aux"), Optional: true}}, Flags: boolFlags("-e", "-f"),
			Usage: "ps aux | ps -ef", Doc: "processes"},
		{Program: "top", Flags: []Flag{{Names: []string{"-b"}, Required: true}, {Names: []string{"-n"}, Value: intRange("N", 1, 3), Required: true}},
			Usage: "top -b -n N(1-3)", Doc: "one batch snapshot of processes"},
		{Program: "lsblk", Flags: boolFlags("-f", "-a", "-b"),
			Usage: "lsblk [-f] [-a] [-b]", Doc: "block devices"},
		{Program: "dmesg", Flags: []Flag{{Names: []string{"-T", "--ctime"}}, {Names: []string{"-l", "--level"}, Value: pattern("LEVEL", `^(emerg|alert|crit|err|warn|notice|info|debug)(,(emerg|alert|crit|err|warn|notice|info|debug)){0,7}$`)}},
			Usage: "dmesg [-T] [-l LEVEL[,LEVEL...]]", Doc: "kernel ring buffer"},
		{Program: "cat", Args: []Arg{{Value: oneOf("FILE", "/proc/loadavg", "/proc/meminfo", "/proc/cpuinfo", "/proc/pressure/cpu", "/proc/pressure/memory", "/proc/pressure/io", "/etc/os-release", "/proc/sys/fs/file-nr")}},
			Usage: "cat /proc/loadavg|/proc/meminfo|/proc/cpuinfo|/proc/pressure/{cpu,memory,io}|/etc/os-release|/proc/sys/fs/file-nr", Doc: "a few fixed kernel and OS files"},
	}}
}

// Usage lists the allowed commands, one per line, for error messages and
// the tool description.
func (a *Allowlist) Usage() string {
	var b strings.Builder
	for _, c := range a.Commands {
		fmt.Fprintf(&b, "  %s  — %s\n", c.Usage, c.Doc)
	}
	return b.String()
}

// Check parses a command line and matches it; the error names the allowed commands.
func (a *Allowlist) Check(command string) ([]string, error) {
	argv, err := Parse(command)
	if err != nil {
		return nil, fmt.Errorf("%w\nallowed commands:\n%s", err, a.Usage())
	}
	if err := a.Match(argv); err != nil {
		return nil, err
	}
	return argv, nil
}

// Match accepts argv if some allowed command matches it exactly; otherwise
// the error says why the closest candidate failed and lists what is allowed.
func (a *Allowlist) Match(argv []string) error {
	if len(argv) == 0 {
		return fmt.Errorf("%w: the command is empty\nallowed commands:\n%s", ErrNotAllowed, a.Usage())
	}
	var reasons []string
	for i := range a.Commands {
		c := &a.Commands[i]
		if c.Program != argv[0] {
			continue
		}
		err := c.match(argv[1:])
		if err == nil {
			return nil
		}
		reasons = append(reasons, fmt.Sprintf("%s: %v", c.Usage, err))
	}
	why := fmt.Sprintf("%q is not an allowed program (give the bare name, no path)", argv[0])
	if len(reasons) > 0 {
		why = strings.Join(reasons, "; ")
	}
	return fmt.Errorf("%w: %s\nallowed commands:\n%s", ErrNotAllowed, why, a.Usage())
}

func (c *Command) flag(name string) *Flag {
	for i := range c.Flags {
		for _, n := range c.Flags[i].Names {
			if n == name {
				return &c.Flags[i]
			}
		}
	}
	return nil
}

func (c *Command) match(args []string) error {
	seen := map[*Flag]bool{}
	var positional []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if f := c.flag(a); f != nil {
			seen[f] = true
			if f.Value == nil {
				continue
			}
			if i+1 >= len(args) {
				return fmt.Errorf("%s needs a value %s", a, f.Value.Name)
			}
			i++
			if err := f.Value.check(args[i]); err != nil {
				return fmt.Errorf("%s: %w", a, err)
			}
			continue
		}
		if name, val, ok := strings.Cut(a, "="); ok && strings.HasPrefix(a, "--") {
			f := c.flag(name)
			if f == nil || f.Value == nil {
				return fmt.Errorf("unknown flag %s", name)
			}
			seen[f] = true
			if err := f.Value.check(val); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			continue
		}
		if len(a) > 2 && a[0] == '-' && a[1] != '-' {
			// -n50 (value attached) or -tlnp (boolean flags combined).
			if f := c.flag(a[:2]); f != nil && f.Value != nil {
				seen[f] = true
				if err := f.Value.check(a[2:]); err != nil {
					return fmt.Errorf("%s: %w", a[:2], err)
				}
				continue
			}
			for _, ch := range a[1:] {
				f := c.flag("-" + string(ch))
				if f == nil || f.Value != nil {
					return fmt.Errorf("unknown flag %s", a)
				}
				seen[f] = true
			}
			continue
		}
		if strings.HasPrefix(a, "-") {
			return fmt.Errorf("unknown flag %s", a)
		}
		positional = append(positional, a)
	}
	for i := range c.Flags {
		if c.Flags[i].Required && !seen[&c.Flags[i]] {
			return fmt.Errorf("%s is required", c.Flags[i].Names[0])
		}
	}
	j := 0
	for _, p := range positional {
		matched := false
		for j < len(c.Args) {
			arg := c.Args[j]
			j++
			if err := arg.Value.check(p); err == nil {
				matched = true
				break
			} else if !arg.Optional {
				return err
			}
		}
		if !matched {
			return fmt.Errorf("unexpected argument %q", p)
		}
	}
	for ; j < len(c.Args); j++ {
		if !c.Args[j].Optional {
			return fmt.Errorf("missing %s", c.Args[j].Value.Name)
		}
	}
	return nil
}
