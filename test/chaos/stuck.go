package chaos

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// stuckHandlers returns, from goroutine dumps (DumpGoroutines), the
// stacks of the brokers' API handlers that were running when the dump was
// taken, fetches (long polls) left out, at most maxBytes per dump: the
// part of a dump that says where a call nobody answered waits. The dumps
// themselves live in the run's output directory, which without -chaos.out
// is a temporary directory removed when the test ends; this goes into the
// test's log, so CI keeps it.
func stuckHandlers(paths []string, maxBytes int) string {
	var out strings.Builder
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var kept strings.Builder
		for _, g := range strings.Split(string(b), "\n\n") {
			if !strings.Contains(g, "_Handler(") || strings.Contains(g, "_Fetch_Handler(") {
				continue
			}
			if kept.Len()+len(g) > maxBytes {
				kept.WriteString("... (more in the dump)\n")
				break
			}
			kept.WriteString(g)
			kept.WriteString("\n\n")
		}
		if kept.Len() > 0 {
			fmt.Fprintf(&out, "--- API handlers running in %s:\n%s", filepath.Base(p), kept.String())
		}
	}
	return out.String()
}
