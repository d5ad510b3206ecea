// Package version implements `hotelbus version`: which build of hotelbus this is.
//
// A release build stamps the version and the commit with the linker:
//
//	go build -ldflags "-X github.com/hotelbus/hotelbus/cmd/hotelbus/version.Version=v1.4.0 \
//	  -X github.com/hotelbus/hotelbus/cmd/hotelbus/version.Commit=$(git rev-parse HEAD)" ./cmd/hotelbus
//
// Without them (go run, go build, go install) both are "dev".
package version

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil"
)

// Version and Commit are set with -ldflags -X at build time (see the package documentation).
var (
	Version = "dev"
	Commit  = "dev"
)

// String is the one-line description `hotelbus version` and `hotelbus --version` print:
// "hotelbus <version> (commit <commit>, <go version>, <os>/<arch>)".
func String() string {
	return fmt.Sprintf("hotelbus %s (commit %s, %s, %s/%s)", Version, Commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// New returns the version command.
func New(f *cmdutil.Factory) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version [--json]",
		Short: "Print the version, commit and Go version of this hotelbus binary",
		Long: `version prints the release version and git commit this binary was built from ("dev" for a build
without release stamping, such as go run or go build), the Go version that built it, and the
platform.`,
		Example: `  hotelbus version
  hotelbus version --json`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if asJSON {
				return cmdutil.WriteJSON(f.Out, map[string]string{"version": Version, "commit": Commit, "go": runtime.Version(),
					"platform": runtime.GOOS + "/" + runtime.GOARCH})
			}
			_, err := fmt.Fprintln(f.Out, String())
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
