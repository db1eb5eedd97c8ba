package cluster

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// OwnerFile, in every temporary directory locksim makes, holds the pid of
// the process that made it.
const OwnerFile = "locksim-owner.pid"

// MakeTempDir makes a temporary directory prefix* under parent (os.TempDir
// if empty) with an OwnerFile in it, after removing the directories a
// locksim process killed before its cleanup left there (its servers died
// with it, through Pdeathsig; its directories stay). prefix must start with
// "locksim-".
func MakeTempDir(parent, prefix string, perm os.FileMode) (string, error) {
	if parent == "" {
		parent = os.TempDir()
	}
	SweepStale(parent)
	dir, err := os.MkdirTemp(parent, prefix)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, OwnerFile), []byte(strconv.Itoa(os.Getpid())), perm); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// SweepStale removes the locksim-* directories under parent whose owner
// process is gone. A directory without an OwnerFile (being made, or not
// locksim's) is left alone.
func SweepStale(parent string) {
	dirs, _ := filepath.Glob(filepath.Join(parent, "locksim-*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, OwnerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 {
			continue
		}
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
			continue // owner alive
		}
		os.RemoveAll(d)
	}
}
