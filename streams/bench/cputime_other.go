//go:build !unix

package bench

// processCPU returns 0: this platform does not give the process's CPU time.
func processCPU() int64 { return 0 }
