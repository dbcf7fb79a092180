package replication

import (
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/stratalog/strata/pkg/record"
)

// A follower stores what it is sent only if each batch has the CRC it
// carries and the offset this replica would give it.
func TestCheckReceived(t *testing.T) {
	at := func(off int64, n int) []byte {
		b := testBatch(t, "v", n, 64)
		record.SetBaseOffset(b, off)
		return b
	}
	cmd := func(idx uint64, b []byte) *raft.Log {
		return &raft.Log{Index: idx, Term: 1, Type: raft.LogCommand, Data: b}
	}
	noop := &raft.Log{Index: 11, Term: 1, Type: raft.LogNoop}
	flipped := at(105, 3)
	flipped[len(flipped)-3] ^= 0x40

	for _, tc := range []struct {
		name string
		logs []*raft.Log
		want string // "" accepted, else a word of the refusal
	}{
		{"in sequence", []*raft.Log{cmd(10, at(100, 5)), noop, cmd(12, at(105, 3))}, ""},
		{"nothing but raft entries", []*raft.Log{noop}, ""},
		{"a gap in offsets", []*raft.Log{cmd(10, at(100, 5)), cmd(11, at(106, 3))}, "next offset is 105"},
		{"offsets this replica already gave", []*raft.Log{cmd(10, at(90, 5))}, "next offset is 100"},
		{"a flipped bit", []*raft.Log{cmd(10, at(100, 5)), cmd(11, flipped)}, "CRC"},
		{"truncated", []*raft.Log{cmd(10, at(100, 5)[:80])}, "batch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkReceived(tc.logs, 100)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, errDisagree) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a refusal naming %q", err, tc.want)
			}
		})
	}
}
