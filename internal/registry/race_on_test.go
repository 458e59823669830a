//go:build race

package registry_test

// raceEnabled: the race detector's sync.Pool drops a random quarter of
// the objects put back, so a pooled writer is sometimes allocated anew.
const raceEnabled = true
