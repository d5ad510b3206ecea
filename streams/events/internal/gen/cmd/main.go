// Command cmd writes package events' generated files from the embedded schemas/ tree and removes
// generated files no schema produces any more. Run it with go generate in streams/events.
package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams/events/internal/gen"
)

func main() {
	if err := run("."); err != nil {
		fmt.Fprintln(os.Stderr, "events gen:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	set, err := schemas.Load(schemas.Embedded())
	if err != nil {
		return err
	}
	files, err := gen.Generate(set, "events")
	if err != nil {
		return err
	}
	old, _ := filepath.Glob(filepath.Join(dir, "*_gen.go"))
	for _, f := range old {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if _, keep := files[filepath.Base(f)]; !keep && bytes.HasPrefix(b, []byte(gen.Header)) {
			if err := os.Remove(f); err != nil {
				return err
			}
		}
	}
	for _, name := range gen.Files(files) {
		if !strings.HasSuffix(name, "_gen.go") {
			return fmt.Errorf("%s: generated files end in _gen.go", name)
		}
		if err := os.WriteFile(filepath.Join(dir, name), files[name], 0o644); err != nil {
			return err
		}
	}
	return nil
}
