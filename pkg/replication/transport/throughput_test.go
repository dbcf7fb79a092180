package transport

import (
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/stratalog/strata/pkg/tlsconfig"
)

// BenchmarkAppendEntries1MiB: a leader sending a producer's 1 MiB batch
// to a follower (16 entries of 64 KiB), one request at a time, with the
// cluster secret (plaintext) and with mutual TLS: the per-hop cost that
// TLS adds to RF=3 produce.
func BenchmarkAppendEntries1MiB(b *testing.B) {
	ca, err := tlsconfig.NewCA("cluster", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	var entries []*raft.Log
	for i := range 16 {
		entries = append(entries, &raft.Log{Index: uint64(i + 1), Term: 1, Data: make([]byte, 64<<10)})
	}
	for _, tc := range []struct {
		name string
		opts func() Options
	}{
		{"secret", func() Options { return secretOpts("s3cret-s3cret-s3cret") }},
		{"mtls", func() Options { return tlsOpts(b, tlsFiles(b, ca, "a", []string{"127.0.0.1"})) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ms := newMuxes(b, 2, tc.opts())
			defer ms[0].Close()
			defer ms[1].Close()
			src, err := ms[0].Transport("g")
			if err != nil {
				b.Fatal(err)
			}
			defer src.Close()
			dst, err := ms[1].Transport("g")
			if err != nil {
				b.Fatal(err)
			}
			done := make(chan struct{})
			served := make(chan struct{})
			go func() {
				defer close(served)
				for {
					select {
					case rpc := <-dst.Consumer():
						rpc.Respond(&raft.AppendEntriesResponse{Term: 1, Success: true}, nil)
					case <-done:
						return
					}
				}
			}()
			defer func() { close(done); <-served; dst.Close() }()
			req := &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, Addr: []byte(ms[0].Addr())},
				Term: 1, Leader: []byte(ms[0].Addr()), Entries: entries}
			var resp raft.AppendEntriesResponse
			b.SetBytes(16 * 64 << 10)
			b.ResetTimer()
			for range b.N {
				if err := src.AppendEntries("2", ms[1].Addr(), req, &resp); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
