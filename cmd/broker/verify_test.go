package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/brokertest"
	"github.com/stratalog/strata/pkg/broker"
	"github.com/stratalog/strata/pkg/record"
	"github.com/stratalog/strata/pkg/segment"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// verify runs `strata-broker verify args...` through the root command and
// returns its output and error.
func verify(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newRootCmd(func(context.Context, broker.Config) error {
		t.Fatal("verify started a broker")
		return nil
	})
	var out strings.Builder
	cmd.SetArgs(append([]string{"verify"}, args...))
	cmd.SetOut(&out)
	cmd.SetErr(&strings.Builder{})
	err := cmd.Execute()
	return out.String(), err
}

// brokerData runs a broker, writes 10 batches of 1,000 records of 1 KiB to
// a topic with 4 MiB segments, snapshots included, stops it and returns its
// data directory and the partition's directory.
func brokerData(t *testing.T) (string, string) {
	t.Helper()
	cfg := brokertest.Config(t, 1)
	b := brokertest.Run(t, cfg)
	brokertest.WaitReady(t, b)
	cc, err := grpc.NewClient(b.APIAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	c := v1.NewStrataClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.CreateTopic(ctx, &v1.CreateTopicRequest{Name: "v", Partitions: 1, Configs: map[string]string{"segment.bytes": fmt.Sprint(4 << 20)}}); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		recs := make([]record.Record, 1000)
		for j := range recs {
			recs[j] = record.Record{Value: bytes.Repeat([]byte{byte(i)}, 1024), Timestamp: time.UnixMilli(1_700_000_000_000)}
		}
		batch, err := record.Encode(recs, record.EncodeOptions{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Produce(ctx, &v1.ProduceRequest{Topic: "v", Partitions: []*v1.ProducePartition{{Partition: 0, Batches: batch}}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	m, _ := filepath.Glob(filepath.Join(cfg.DataDir, "topics", "v-*", "0"))
	if len(m) != 1 {
		t.Fatalf("partition dirs %v", m)
	}
	return cfg.DataDir, m[0]
}

func TestVerify(t *testing.T) {
	data, part := brokerData(t)
	out, err := verify(t, "--data-dir", data)
	if err != nil || !strings.Contains(out, " 0 damaged") || !strings.Contains(out, "bbolt") {
		t.Fatalf("verify of a sound data dir: %v\n%s", err, out)
	}
	segs, _ := filepath.Glob(filepath.Join(part, "*.log"))
	sort.Strings(segs)
	if len(segs) < 3 {
		t.Fatalf("want a few segments, got %v", segs)
	}

	// A flipped byte in a closed segment and in the middle of the active
	// one; a corrupt snapshot.
	flipAt := func(path string, at int64) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if at < 0 {
			at = int64(len(b)) / 2
		}
		b[at] ^= 0x08
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	flipAt(segs[0], 5000)
	flipAt(segs[len(segs)-1], -1)
	snaps, _ := filepath.Glob(filepath.Join(part, "snapshots", "*", "state.bin"))
	if len(snaps) > 0 {
		flipAt(snaps[0], 12)
	}
	out, err = verify(t, "--data-dir", data, "--output", "json")
	if err == nil {
		t.Fatalf("verify of damaged data exited 0:\n%s", out)
	}
	var rep verifyReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	status := map[string]segment.FileCheck{}
	for _, c := range rep.Checks {
		status[c.File] = c.FileCheck
	}
	first, last := status[filepath.Base(segs[0])], status[filepath.Base(segs[len(segs)-1])]
	if first.Status != segment.CheckDamaged || !strings.Contains(first.Detail, "closed segment") {
		t.Fatalf("closed segment: %+v", first)
	}
	if last.Status != segment.CheckDamaged || !strings.Contains(last.Detail, "valid frames follow") {
		t.Fatalf("active segment: %+v", last)
	}
	want := 2
	if len(snaps) > 0 {
		want++
		rel, _ := filepath.Rel(part, filepath.Dir(snaps[0]))
		if c := status[rel]; c.Status != segment.CheckDamaged {
			t.Fatalf("snapshot %s: %+v", rel, c)
		}
	}
	if rep.Damaged != want || rep.Replicas != 1 {
		t.Fatalf("report: %d damaged in %d replicas, want %d in 1", rep.Damaged, rep.Replicas, want)
	}
	// Pointed at the partition directory itself, with --problems-only.
	out, err = verify(t, "--data-dir", part, "--problems-only")
	if err == nil || strings.Contains(out, "\tok\t") || !strings.Contains(out, fmt.Sprintf(" %d damaged", want)) {
		t.Fatalf("verify of one replica dir: %v\n%s", err, out)
	}
}
