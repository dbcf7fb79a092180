package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	bolt "go.etcd.io/bbolt"

	"github.com/stratalog/strata/pkg/replication"
	"github.com/stratalog/strata/pkg/segment"
)

// newVerifyCmd is `strata-broker verify`: an offline check of a stopped
// broker's data directory (raft-wal's waldump, bbolt's Tx.Check).
func newVerifyCmd() *cobra.Command {
	dataDir, output, problems := "./strata-data", "table", false
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check every segment, index and snapshot of a stopped broker's data directory",
		Long: `verify reads every file of a broker's data directory and reports on each,
changing nothing. Stop the broker first: a running broker writes while verify
reads (and holds the Raft databases locked).

Per partition replica (topics/<topic>-<id>/<p>/): every segment frame by frame
(CRC, framing, contiguous Raft indexes and offsets, segments ending where the
next begins), the index files of closed segments against a rebuild, the offset
files, the damage mark and quarantined bytes, and every Raft snapshot (CRC,
encoding, whether the log covers it). Also the bbolt databases (raft-stable.db,
metadata/raft.db) with bbolt's consistency check.

Statuses: ok; torn-tail (an unfinished write at the end of the active segment,
which the next start cuts: normal after a crash); damaged (stored data is
wrong; see docs/operations.md, "Damaged logs"); note (worth knowing, not wrong).
Exit status 0 when nothing is damaged, 1 otherwise.`,
		Example: `  strata-broker verify --data-dir /var/lib/strata
  strata-broker verify --data-dir /var/lib/strata --problems-only
  strata-broker verify --data-dir /var/lib/strata --output json | jq '.checks[] | select(.status=="damaged")'`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("--output must be table or json, not %q", output)
			}
			rep, err := verifyDataDir(dataDir)
			if err != nil {
				return err
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else {
				rep.table(cmd.OutOrStdout(), problems)
			}
			if rep.Damaged > 0 {
				return fmt.Errorf("verify: %d damaged files in %s", rep.Damaged, dataDir)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", dataDir, "the broker's data directory (or one partition replica's directory)")
	cmd.Flags().StringVarP(&output, "output", "o", output, "table or json")
	cmd.Flags().BoolVar(&problems, "problems-only", problems, "table: list only files that are not ok")
	return cmd
}

// verifyReport is verify's result; its JSON form is the --output json.
type verifyReport struct {
	DataDir    string        `json:"data_dir"`
	Replicas   int           `json:"replicas"`
	Files      int           `json:"files"`
	Damaged    int           `json:"damaged"`
	TornTails  int           `json:"torn_tails"`
	Notes      int           `json:"notes"`
	Checks     []verifyCheck `json:"checks"`
	DurationMs int64         `json:"duration_ms"`
}

type verifyCheck struct {
	Dir string `json:"dir"` // relative to the data directory
	segment.FileCheck
}

// verifyDataDir checks every partition replica directory under dir (or dir
// itself, if it is one) and the bbolt databases.
func verifyDataDir(dir string) (*verifyReport, error) {
	start := time.Now()
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	rep := &verifyReport{DataDir: dir}
	var dirs []string
	if logs, _ := filepath.Glob(filepath.Join(dir, "*.log")); len(logs) > 0 {
		dirs = []string{dir}
	} else {
		m, err := filepath.Glob(filepath.Join(dir, "topics", "*", "*"))
		if err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
		for _, d := range m {
			if fi, err := os.Stat(d); err == nil && fi.IsDir() {
				dirs = append(dirs, d)
			}
		}
	}
	sort.Strings(dirs)
	for _, d := range dirs {
		checks, err := replication.VerifyDir(d)
		rel, _ := filepath.Rel(dir, d)
		if err != nil {
			checks = []segment.FileCheck{{Kind: "directory", Status: segment.CheckDamaged, Detail: err.Error()}}
		}
		rep.Replicas++
		for _, c := range checks {
			rep.add(verifyCheck{Dir: rel, FileCheck: c})
		}
	}
	for _, db := range []string{"raft-stable.db", filepath.Join("metadata", "raft.db")} {
		if _, err := os.Stat(filepath.Join(dir, db)); err == nil {
			rep.add(verifyCheck{Dir: filepath.Dir(db), FileCheck: checkBolt(filepath.Join(dir, db))})
		}
	}
	rep.DurationMs = time.Since(start).Milliseconds()
	return rep, nil
}

func (r *verifyReport) add(c verifyCheck) {
	r.Files++
	switch c.Status {
	case segment.CheckDamaged:
		r.Damaged++
	case segment.CheckTornTail:
		r.TornTails++
	case segment.CheckNote:
		r.Notes++
	}
	r.Checks = append(r.Checks, c)
}

// checkBolt runs bbolt's consistency check on a database, read-only.
func checkBolt(path string) segment.FileCheck {
	c := segment.FileCheck{File: filepath.Base(path), Kind: "bbolt", Status: segment.CheckOK}
	if fi, err := os.Stat(path); err == nil {
		c.Size = fi.Size()
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		c.Status, c.Detail = segment.CheckDamaged, fmt.Sprintf("open: %v (a running broker holds it locked: stop it first)", err)
		return c
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		var first error
		for err := range tx.Check() { // drained: the checker stops when done
			if first == nil {
				first = err
			}
		}
		return first
	})
	if err != nil {
		c.Status, c.Detail = segment.CheckDamaged, err.Error()
	}
	return c
}

// table prints the report as a table and a summary line.
func (r *verifyReport) table(w io.Writer, problemsOnly bool) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DIR\tFILE\tKIND\tSTATUS\tSIZE\tDETAIL")
	for _, c := range r.Checks {
		if problemsOnly && c.Status == segment.CheckOK {
			continue
		}
		detail := c.Detail
		if c.Position > 0 {
			detail = fmt.Sprintf("at position %d: %s", c.Position, detail)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", c.Dir, c.File, c.Kind, c.Status, c.Size, detail)
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%d files in %d partition replicas checked in %d ms: %d damaged, %d torn tails, %d notes\n",
		r.Files, r.Replicas, r.DurationMs, r.Damaged, r.TornTails, r.Notes)
}
