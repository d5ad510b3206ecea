//go:build !unix

package cmdutil

// processAlive cannot check a process here without opening it: a stack is taken as running, and
// Reachable reports its dead ports.
func processAlive(int) bool { return true }
