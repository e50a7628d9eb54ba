package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// TokenFile is the secret that proves a push comes from the pod's own
// agent: the agent writes it to a file on a volume only the pod's
// containers mount (an emptyDir), skycall's Lua service reads that file on
// every command and refuses a command without it. It never crosses the
// pod's boundary except inside the agent's loopback calls to skynet.
type TokenFile struct {
	path string

	mu    sync.Mutex
	token string // the token last written to path
}

// NewTokenFile writes a fresh token to path and returns it.
func NewTokenFile(path string) (*TokenFile, error) {
	t := &TokenFile{path: path}
	return t, t.Rotate()
}

// Token returns the token in force; "" for a nil TokenFile, which skynet
// refuses.
func (t *TokenFile) Token() string {
	if t == nil {
		return ""
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.token
}

// Rotate writes a new token: 32 random bytes as 64 hex digits, renamed into
// place so that skynet never reads half a token. The agent makes its calls
// one at a time, so none is in flight with the old token.
func (t *TokenFile) Rotate() error {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return fmt.Errorf("token: %w", err)
	}
	token := hex.EncodeToString(b[:])
	tmp, err := os.CreateTemp(filepath.Dir(t.path), ".token-*")
	if err != nil {
		return fmt.Errorf("write the agent token beside %s (mount a volume shared with skynet there): %w", t.path, err)
	}
	defer os.Remove(tmp.Name())
	// Readable by the pod's user and group: skynet runs as one of them.
	if err := tmp.Chmod(0o640); err != nil {
		tmp.Close()
		return fmt.Errorf("token: %w", err)
	}
	if _, err := tmp.WriteString(token + "\n"); err != nil {
		tmp.Close()
		return fmt.Errorf("token: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("token: %w", err)
	}
	if err := os.Rename(tmp.Name(), t.path); err != nil {
		return fmt.Errorf("token: %w", err)
	}
	t.mu.Lock()
	t.token = token
	t.mu.Unlock()
	return nil
}
