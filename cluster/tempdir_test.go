package cluster

import (
	"os"
	"path/filepath"
	"testing"
)

// A directory whose owner is gone is swept by the next MakeTempDir; one
// whose owner lives, or that has no owner file, stays.
func TestMakeTempDirSweepsStale(t *testing.T) {
	parent := t.TempDir()
	mk := func(name, owner string) string {
		d := filepath.Join(parent, name)
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if owner != "" {
			if err := os.WriteFile(filepath.Join(d, OwnerFile), []byte(owner), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	stale := mk("locksim-run-stale", "2000000000") // above any pid_max
	live := mk("locksim-run-live", "1")
	foreign := mk("locksim-run-foreign", "")
	dir, err := MakeTempDir(parent, "locksim-test-", 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, OwnerFile)); err != nil {
		t.Fatalf("no owner file: %v", err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale dir kept: %v", err)
	}
	for _, d := range []string{live, foreign} {
		if _, err := os.Stat(d); err != nil {
			t.Fatalf("%s removed: %v", d, err)
		}
	}
}
