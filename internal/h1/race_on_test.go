//go:build race

package h1

// raceEnabled: the race detector makes sync.Pool drop items at random, so
// a test of allocations through a pool cannot expect none.
const raceEnabled = true
