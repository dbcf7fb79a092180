package segment

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// checkClean fails unless Check finds every file of dir ok.
func checkClean(t *testing.T, dir string, interval int) {
	t.Helper()
	cs, err := Check(dir, interval)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.Status != CheckOK {
			t.Fatalf("Check of a sound log: %s (%s): %s: %s", c.File, c.Kind, c.Status, c.Detail)
		}
	}
}

func checkOf(t *testing.T, dir, file string) FileCheck {
	t.Helper()
	cs, err := Check(dir, testOptions().IndexIntervalBytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.File == file {
			return c
		}
	}
	t.Fatalf("Check did not report %s: %+v", file, cs)
	return FileCheck{}
}

// TestCheck: the offline check tells a sound log, a torn tail, damage in
// the active segment with valid frames after it, damage in a closed
// segment and a wrong index file apart, and changes no file.
func TestCheck(t *testing.T) {
	dir, _, last := crashLog(t)
	checkClean(t, dir, testOptions().IndexIntervalBytes)
	lastName := filepath.Base(last)
	ends := frameEnds(t, last)
	first := segmentPath(dir, 0)

	cases := map[string]struct {
		damage     func(d string)
		file       string
		status     string
		position   int64
		detailHint string
	}{
		"torn tail": {
			damage: func(d string) { os.Truncate(filepath.Join(d, lastName), ends[len(ends)-1]-3) },
			file:   lastName, status: CheckTornTail, position: ends[len(ends)-2], detailHint: "unfinished write",
		},
		"damage below the tail": {
			damage: func(d string) { flip(t, filepath.Join(d, lastName), ends[len(ends)-4]+40) },
			file:   lastName, status: CheckDamaged, position: ends[len(ends)-4], detailHint: "valid frames follow",
		},
		"closed segment": {
			damage: func(d string) { flip(t, filepath.Join(d, filepath.Base(first)+logSuffix), 200) },
			file:   filepath.Base(first) + logSuffix, status: CheckDamaged, detailHint: "closed segment",
		},
		"index": {
			damage: func(d string) { flip(t, filepath.Join(d, filepath.Base(first)+indexSuffix), 5) },
			file:   filepath.Base(first) + indexSuffix, status: CheckDamaged, detailHint: "rebuild",
		},
		"start offset": {
			damage: func(d string) { os.WriteFile(filepath.Join(d, startFileName), []byte("garbage!!!!!"), 0o644) },
			file:   startFileName, status: CheckDamaged,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			d := t.TempDir()
			copyDir(t, dir, d)
			tc.damage(d)
			before := dirBytes(t, d)
			c := checkOf(t, d, tc.file)
			if c.Status != tc.status || (tc.position != 0 && c.Position != tc.position) || !strings.Contains(c.Detail, tc.detailHint) {
				t.Fatalf("%s: %+v; want status %s at %d, detail with %q", tc.file, c, tc.status, tc.position, tc.detailHint)
			}
			if after := dirBytes(t, d); !equalMaps(before, after) {
				t.Fatal("Check changed the directory")
			}
		})
	}
	// Damage found and cut by Open leaves a mark Check reports.
	d := t.TempDir()
	copyDir(t, dir, d)
	flip(t, filepath.Join(d, lastName), ends[len(ends)-4]+40)
	l := mustOpen(t, d, testOptions())
	l.Close()
	if c := checkOf(t, d, damageFileName); c.Status != CheckDamaged || !strings.Contains(c.Detail, "abstains") {
		t.Fatalf("damage mark: %+v", c)
	}
}

func dirBytes(t *testing.T, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		m[e.Name()] = string(b)
	}
	return m
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
