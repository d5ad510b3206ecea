package dev

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/hotelbus/hotelbus/schemas"
)

// explainHistory refuses a start whose registry holds versions the schema tree lacks or has
// otherwise (ErrHistory: registered by `hotelbus schemas register --dir <tree>`, or a file
// edited), naming each subject and version and the two ways forward: register from the tree that
// was registered (keeping the data), or start over (losing it).
func explainHistory(o Options, states []schemas.SubjectState) error {
	var lines []string
	for _, st := range states {
		for _, p := range st.Problems {
			if errors.Is(p, schemas.ErrHistory) {
				lines = append(lines, strings.TrimPrefix(p.Error(), schemas.ErrHistory.Error()+": "))
			}
		}
	}
	if len(lines) == 0 {
		return nil
	}
	tree := "the schemas built into this binary"
	if o.SchemasDir != "" {
		tree = o.SchemasDir
	}
	return fmt.Errorf(`dev: %w: the registry in %s holds schema versions that %s lacks or has otherwise:
  %s
Such a version was registered from another schema tree (e.g. "hotelbus schemas register --dir <tree>")
or its file was edited since; a registry never forgets a version. Either
  keep the data (records, offsets, schema ids): register from that tree, on every start,
      hotelbus dev --data-dir %s --schemas-dir <tree>
    (or put its files into schemas/events/ and rebuild: go run ./cmd/hotelbus dev); or
  lose the data: start over with
      hotelbus dev --data-dir %s --fresh`,
		schemas.ErrHistory, filepath.Join(o.DataDir, "registry"), tree, strings.Join(lines, "\n  "), shellQuote(o.DataDir), shellQuote(o.DataDir))
}

// shellQuote returns s as one shell word.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+:@%,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
