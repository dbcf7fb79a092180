// Package suggest finds what a mistyped flag may have meant, for the
// strata and strata-broker commands: cobra suggests subcommands, never
// flags.
package suggest

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"
)

// Flag names the flags of fs that typed (a flag name without its dashes)
// may be a typo of, as " (did you mean --num?)", or returns "". A flag is
// near when it is at most two edits away, or contains what was typed
// (three letters or more: --principal finds --allow-principal and
// --deny-principal). Hidden flags are never suggested.
func Flag(fs *pflag.FlagSet, typed string) string {
	var near []string
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		if distance(typed, f.Name) <= 2 || (len(typed) >= 3 && strings.Contains(f.Name, typed)) {
			near = append(near, "--"+f.Name)
		}
	})
	return phrase(near)
}

// Words is " (did you mean "a"?)" for a list of suggestions in quotes,
// as cobra's SuggestionsFor gives for commands, or "" for none.
func Words(s []string) string {
	q := make([]string, len(s))
	for i, w := range s {
		q[i] = fmt.Sprintf("%q", w)
	}
	return phrase(q)
}

func phrase(near []string) string {
	switch len(near) {
	case 0:
		return ""
	case 1:
		return fmt.Sprintf(" (did you mean %s?)", near[0])
	default:
		return fmt.Sprintf(" (did you mean %s or %s?)", strings.Join(near[:len(near)-1], ", "), near[len(near)-1])
	}
}

// distance is the Levenshtein distance between a and b, in bytes.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
