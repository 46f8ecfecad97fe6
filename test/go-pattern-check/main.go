// go-pattern-check reports how Go itself judges ACL match patterns, for the parity test
// (test/unit/acl-pattern-parity.test.ts): docker_auth compiles a pattern between slashes with
// regexp.Compile and matches any other pattern with path.Match. Standard library only.
//
// stdin: a JSON array of strings. stdout: a JSON array, one object per string:
// {"regexp": <regexp.Compile's error or null>, "glob": <path.Match's error or null>}.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
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

func main() {
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
