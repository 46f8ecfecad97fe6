// go-pattern-check reports how Go itself judges ACL match patterns, for the parity test
// (test/unit/acl-pattern-parity.test.ts): docker_auth compiles a pattern between slashes with
// regexp.Compile and matches any other pattern with path.Match. Standard library only.
//
// stdin: a JSON array of strings. stdout: a JSON array, one object per string:
// {"regexp": <regexp.Compile's error or null>, "glob": <path.Match's error or null>}.
//
// With the argument `unicode-names` it prints the Unicode class names this Go knows instead:
// {"version": <unicode.Version>, "categories": [...], "scripts": [...], "aliases": [...]}, the
// tables \p{Name} is looked up in (Go 1.25+ also accepts the aliases, and every name loosely).
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"sort"
	"unicode"
)

type verdict struct {
	Regexp *string `json:"regexp"`
	Glob   *string `json:"glob"`
}

// Names path.Match is tried against: its verdict on a pattern must not depend on the name.
var names = []string{"", "a", "team-a/app", "team-a/x/y", "[", "\\"}

func errText(err error) *string {
	if err == nil {
		return nil
	}
	text := err.Error()
	return &text
}

func globVerdict(pattern string) *string {
	var first error
	for i, name := range append(names, pattern) {
		_, err := path.Match(pattern, name)
		if i == 0 {
			first = err
		} else if (err == nil) != (first == nil) {
			text := fmt.Sprintf("inconsistent: path.Match errs for some names only (%q: %v, %q: %v)", names[0], first, name, err)
			return &text
		}
	}
	return errText(first)
}

func keys[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

func unicodeNames() {
	tables := map[string]any{
		"version":    unicode.Version,
		"categories": keys(unicode.Categories),
		"scripts":    keys(unicode.Scripts),
		"aliases":    keys(unicode.CategoryAliases),
	}
	if err := json.NewEncoder(os.Stdout).Encode(tables); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "unicode-names" {
		unicodeNames()
		return
	}
	input, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var patterns []string
	if err := json.Unmarshal(input, &patterns); err != nil {
		fmt.Fprintln(os.Stderr, "stdin must be a JSON array of strings:", err)
		os.Exit(2)
	}
	verdicts := make([]verdict, len(patterns))
	for i, p := range patterns {
		_, err := regexp.Compile(p)
		verdicts[i] = verdict{Regexp: errText(err), Glob: globVerdict(p)}
	}
	if err := json.NewEncoder(os.Stdout).Encode(verdicts); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
}
