// Command hotelbus is the hotelbus platform's one binary; see `hotelbus --help`.
package main

import (
	"os"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/root"
)

func main() {
	os.Exit(root.Main())
}
