//go:build !unix

package bench

// processCPU reports that this platform does not give the process's CPU time.
func processCPU() (int64, bool) { return 0, false }
