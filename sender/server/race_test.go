//go:build race

package server

// raceEnabled: the race detector is on. Under it sync.Pool drops a share of
// what is put back on purpose, so allocation counts do not hold.
const raceEnabled = true
