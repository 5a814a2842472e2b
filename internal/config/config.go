// Package config resolves shepherd's settings. Every setting is a command-line
// flag; a flag left unset is read from the environment (SHEPHERD_ plus the
// flag name in upper case with dashes as underscores), then from the YAML
// config file (keys are flag names), then keeps its default. One mechanism
// for all three means --help documents every way to set anything.
package config

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"
)

// EnvPrefix starts every environment variable shepherd reads.
const EnvPrefix = "SHEPHERD_"

// FileFlag is the flag that names the YAML config file.
const FileFlag = "config"

// EnvName returns the environment variable for a flag.
func EnvName(flag string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// Resolve fills every flag of fs that was not given on the command line from
// the environment, then from the config file named by --config (or
// SHEPHERD_CONFIG). Unknown file keys and unparsable values are errors that
// name the key and where it came from.
func Resolve(fs *pflag.FlagSet) error {
	file := ""
	if f := fs.Lookup(FileFlag); f != nil {
		file = f.Value.String()
		if !f.Changed {
			if v, ok := os.LookupEnv(EnvName(FileFlag)); ok {
				file = v
			}
		}
	}
	fileValues, err := readFile(file)
	if err != nil {
		return err
	}
	for key := range fileValues {
		if fs.Lookup(key) == nil {
			return fmt.Errorf("config file %s: unknown setting %q (settings are flag names, see --help)", file, key)
		}
	}
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == FileFlag || f.Name == "help" {
			return
		}
		if v, ok := os.LookupEnv(EnvName(f.Name)); ok {
			if err := set(fs, f, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", EnvName(f.Name), v, err))
			}
			return
		}
		if v, ok := fileValues[f.Name]; ok {
			if err := set(fs, f, v); err != nil {
				errs = append(errs, fmt.Errorf("config file %s: %s: %w", file, f.Name, err))
			}
		}
	})
	return errors.Join(errs...)
}

func set(fs *pflag.FlagSet, f *pflag.Flag, v string) error {
	// Slice flags append on Set; a value from env or file replaces the default.
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		items := []string{}
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				items = append(items, s)
			}
		}
		return sv.Replace(items)
	}
	return fs.Set(f.Name, v)
}

// readFile returns the file's settings as strings; lists become
// comma-separated values.
func readFile(path string) (map[string]string, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config file: %w", err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("config file %s is not valid YAML: %w", path, err)
	}
	out := make(map[string]string, len(raw))
	for k, v := range raw {
		switch t := v.(type) {
		case []any:
			parts := make([]string, len(t))
			for i, x := range t {
				parts[i] = scalar(x)
			}
			out[k] = strings.Join(parts, ",")
		case map[string]any:
			// Per-node overrides and the like: key=value pairs, sorted.
			keys := make([]string, 0, len(t))
			for mk := range t {
				keys = append(keys, mk)
			}
			sort.Strings(keys)
			parts := make([]string, len(keys))
			for i, mk := range keys {
				parts[i] = mk + "=" + scalar(t[mk])
			}
			out[k] = strings.Join(parts, ",")
		case nil:
			out[k] = ""
		default:
			out[k] = scalar(t)
		}
	}
	return out, nil
}

// scalar renders a YAML scalar as a flag value. YAML numbers arrive as
// float64, which %v would print as 1e+06; flags want 1000000.
func scalar(v any) string {
	if f, ok := v.(float64); ok {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}

// ReadSecret returns a secret from a file (trimmed), or from the named
// environment variable when the file is empty. Errors never include the
// secret itself.
func ReadSecret(file, env string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read secret file: %w", err)
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			return "", fmt.Errorf("secret file %s is empty", file)
		}
		return s, nil
	}
	if env != "" {
		return strings.TrimSpace(os.Getenv(env)), nil
	}
	return "", nil
}
