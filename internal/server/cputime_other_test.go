//go:build !unix

package server

// cpuTime is unknown here: BenchmarkProxy reports no cpu-ns/op.
func cpuTime() int64 { return 0 }
