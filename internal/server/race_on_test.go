//go:build race

package server

// raceEnabled: the race detector makes sync.Pool drop items at random, so
// a test of allocations through latch's pools cannot expect none.
const raceEnabled = true
