// Package faults holds latch's fault and hostile-input suites; it has no code of its own.
//
// The tests run the built latch binary between real target processes and
// real clients over loopback. A target process is this package's test
// binary run again with LATCH_FAULT_TARGET set to its mode (see
// runTarget), so that a scenario can kill a real target with SIGKILL. Each
// scenario is bounded in time and in requests, asserts what latch
// promises, and prints one row: the fault, the load, what clients saw and
// what was lost. The fast part runs in `go test ./...`; the whole suite,
// on both data paths and over HTTPS where TLS matters, with
//
//	LATCH_FAULTS=all go test -count=1 -v -run TestFaults ./internal/faults
//
// which prints every row at the end as a Markdown table.
package faults
