package chaos

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStuckHandlers(t *testing.T) {
	dump := `goroutine 1 [running]:
main.main()

goroutine 7 [sync.RWMutex.RLock, 2 minutes]:
github.com/stratalog/strata/pkg/broker.(*Broker).Metadata(...)
github.com/stratalog/strata/api/v1._Strata_Metadata_Handler(...)

goroutine 9 [select]:
github.com/stratalog/strata/pkg/broker.(*Broker).Fetch(...)
github.com/stratalog/strata/api/v1._Strata_Fetch_Handler(...)
`
	p := filepath.Join(t.TempDir(), "node1-goroutines-120000.txt")
	if err := os.WriteFile(p, []byte(dump), 0o644); err != nil {
		t.Fatal(err)
	}
	got := stuckHandlers([]string{p}, 1<<10)
	if !strings.Contains(got, "(*Broker).Metadata") || strings.Contains(got, "Fetch") || strings.Contains(got, "main.main") {
		t.Fatalf("stuckHandlers kept the wrong goroutines:\n%s", got)
	}
}
