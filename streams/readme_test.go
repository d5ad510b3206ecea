package streams_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var goBlock = regexp.MustCompile("(?s)```go\n(.*?)```")

// TestReadmeGoBlocksAreExamples: every Go block of the README is the body of an Example function
// of this package, so `go test` compiles and runs what the README shows (a block that drifts from
// its Example fails here).
func TestReadmeGoBlocksAreExamples(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := goBlock.FindAllSubmatch(readme, -1)
	if len(blocks) == 0 {
		t.Fatal("README.md has no Go block")
	}
	files, _ := filepath.Glob("*_test.go")
	fset := token.NewFileSet()
	var bodies []string
	for _, name := range files {
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || !strings.HasPrefix(fn.Name.Name, "Example") || fn.Body == nil {
				continue
			}
			body := src[fset.Position(fn.Body.Lbrace).Offset+1 : fset.Position(fn.Body.Rbrace).Offset]
			bodies = append(bodies, normalize(string(body)))
		}
	}
	for _, b := range blocks {
		block := normalize(string(b[1]))
		found := false
		for _, body := range bodies {
			if strings.Contains(body, block) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("this README Go block is not the body of an Example in streams/*_test.go:\n%s", b[1])
		}
	}
}

// normalize drops indentation, blank lines and the Example's // Output: comment.
func normalize(s string) string {
	var out []string
	for l := range strings.Lines(s) {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "// Output:") {
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}
