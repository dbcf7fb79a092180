package replication

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"
)

// Many groups writing their term at once (an election burst) all land, and
// survive a reopen.
func TestStableStoresConcurrentGroups(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stable.db")
	s, err := OpenStableStores(path)
	if err != nil {
		t.Fatal(err)
	}
	const groups = 500
	var wg sync.WaitGroup
	for i := range groups {
		wg.Go(func() {
			st := s.For(fmt.Sprintf("topic/%d", i))
			if err := st.SetUint64([]byte("CurrentTerm"), uint64(i+1)); err != nil {
				t.Error(err)
			}
			if err := st.Set([]byte("LastVoteCand"), fmt.Appendf(nil, "n%d", i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := s.Delete("topic/7"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = OpenStableStores(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range groups {
		st := s.For(fmt.Sprintf("topic/%d", i))
		term, err := st.GetUint64([]byte("CurrentTerm"))
		if i == 7 {
			if err == nil {
				t.Fatalf("deleted group 7 still has term %d", term)
			}
			continue
		}
		if err != nil || term != uint64(i+1) {
			t.Fatalf("group %d: term %d, %v", i, term, err)
		}
		if v, err := st.Get([]byte("LastVoteCand")); err != nil || string(v) != fmt.Sprintf("n%d", i) {
			t.Fatalf("group %d: vote %q, %v", i, v, err)
		}
	}
}

// BenchmarkStableStoresBurst: N groups each writing a term at once, as
// in an election burst; reports the time for the whole burst.
func BenchmarkStableStoresBurst(b *testing.B) {
	s, err := OpenStableStores(filepath.Join(b.TempDir(), "stable.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for n := range b.N {
		var wg sync.WaitGroup
		for i := range 1000 {
			wg.Go(func() {
				if err := s.For(fmt.Sprintf("t/%d", i)).SetUint64([]byte("CurrentTerm"), uint64(n+1)); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
	}
}
