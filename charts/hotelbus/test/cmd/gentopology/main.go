// Command gentopology writes the chart's files/topology.yaml (see package topology) to the path
// given as its only argument.
package main

import (
	"fmt"
	"os"

	"github.com/hotelbus/hotelbus/charts/hotelbus/test/topology"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: gentopology charts/hotelbus/files/topology.yaml")
		os.Exit(2)
	}
	f, err := topology.Embedded()
	if err == nil {
		var b []byte
		if b, err = topology.Render(f); err == nil {
			err = os.WriteFile(os.Args[1], b, 0o644)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gentopology:", err)
		os.Exit(1)
	}
}
