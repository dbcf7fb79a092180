package replication

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/stratalog/strata/pkg/replication/transport"
)

// TestRaftLogLevels: raft's lines about peers that are down, closing or
// have not opened a group yet, and about raft working as designed, are
// logged at debug; its other warnings and errors keep their level.
func TestRaftLogLevels(t *testing.T) {
	peerErr := func(err error) error {
		return fmt.Errorf(`heartbeat to 127.0.0.1:1 (group "g"): %w`, err)
	}
	for _, tc := range []struct {
		level hclog.Level
		msg   string
		args  []any
		want  zapcore.Level
	}{
		{hclog.Error, "failed to appendEntries to", []any{"peer", "x", "error", peerErr(transport.ErrUnknownGroup)}, zapcore.DebugLevel},
		{hclog.Error, "failed to heartbeat to", []any{"peer", "x", "error", peerErr(transport.ErrClosed)}, zapcore.DebugLevel},
		{hclog.Error, "failed to make requestVote RPC", []any{"error", peerErr(fmt.Errorf("%w: dial: refused", transport.ErrUnreachable))}, zapcore.DebugLevel},
		{hclog.Warn, "failed to get previous log", []any{"error", errors.New("log not found")}, zapcore.DebugLevel},
		{hclog.Warn, "rejecting vote request since our last term is greater", nil, zapcore.DebugLevel},
		{hclog.Error, "peer has newer term, stopping replication", []any{"peer", "x"}, zapcore.DebugLevel},
		// Genuine: kept.
		{hclog.Error, "failed to appendEntries to", []any{"peer", "x", "error", peerErr(transport.ErrFrameTooLarge)}, zapcore.ErrorLevel},
		{hclog.Error, "failed to appendEntries to", []any{"peer", "x", "error", peerErr(transport.ErrTimeout)}, zapcore.ErrorLevel},
		// A heartbeat without an answer in time: a warning (a paused peer).
		{hclog.Error, "failed to heartbeat to", []any{"peer", "x", "error", peerErr(transport.ErrTimeout)}, zapcore.WarnLevel},
		{hclog.Error, "failed to append to logs", []any{"error", errors.New("disk full")}, zapcore.ErrorLevel},
		{hclog.Warn, "failed to contact quorum of nodes, stepping down", nil, zapcore.WarnLevel},
		{hclog.Error, "failed to heartbeat to", []any{"error", "not an error value"}, zapcore.ErrorLevel},
	} {
		core, logs := observer.New(zapcore.DebugLevel)
		NewHCLog(zap.New(core), "raft").Log(tc.level, tc.msg, tc.args...)
		if logs.Len() != 1 || logs.All()[0].Level != tc.want {
			t.Errorf("%s %q %v: logged %v, want one entry at %s", tc.level, tc.msg, tc.args, logs.All(), tc.want)
		}
	}
}

// TestRoutineMessagesExist: every message routine.go names is one the raft
// module in use logs, word for word (a raft upgrade that rewords one would
// bring its lines back at their old level).
func TestRoutineMessagesExist(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/hashicorp/raft").Output()
	if err != nil {
		t.Skipf("go list -m github.com/hashicorp/raft: %v (no go command?)", err)
	}
	dir := strings.TrimSpace(string(out))
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no raft sources in %q: %v", dir, err)
	}
	var src strings.Builder
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src.Write(b)
	}
	for msg := range routineMessages {
		if !strings.Contains(src.String(), strconv.Quote(msg)) {
			t.Errorf("raft in %s never logs %q", dir, msg)
		}
	}
}
