// Package repo finds the skycall repository from a test or a bench
// command. It uses the standard library only, so that every test-support
// package (test/localcp, test/skynetpeer) and the bench module can share it.
package repo

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
)

// Root is the nearest directory upward from the working directory whose
// go.mod declares the skycall module (the bench module's go.mod, one level
// down, is passed over).
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			bytes.Contains(b, []byte("module github.com/skycall-io/skycall\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the skycall repository (no go.mod of github.com/skycall-io/skycall above the working directory)")
		}
		dir = parent
	}
}
