package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// docs/errors.md ("When it fails") lists every error brokercred can print.
// An error is a fmt.Errorf or errors.New call whose message names a fix
// after "; ". The catalog quotes each message's cause (the part before the
// first "; ", with each formatting verb shown as …) in backticks, one table
// row each. This test keeps the catalog and the code from drifting in
// either direction.

var verb = regexp.MustCompile(`%[-+# 0-9.]*[a-zA-Z]`)

// errorCauses collects the causes of the user-facing errors in the
// product's Go files: main.go and every package under internal/, however
// they are arranged there (not tests, the test kit or the test doubles, not
// the demo or benchmarks).
func errorCauses(t *testing.T) map[string]string {
	t.Helper()
	causes := map[string]string{}
	fset := token.NewFileSet()
	for _, path := range productFiles(t) {
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if msg, ok := errorMessage(n); ok && strings.Contains(msg, "; ") {
				cause, _, _ := strings.Cut(msg, "; ")
				causes[strings.TrimSpace(verb.ReplaceAllString(cause, "…"))] = fset.Position(n.Pos()).String()
			}
			return true
		})
	}
	return causes
}

// productFiles are the non-test Go files of the root package and of every
// package under internal/ except testkit and the test doubles (a package
// named like brokertest, after net/http/httptest).
func productFiles(t *testing.T) []string {
	t.Helper()
	files, _ := filepath.Glob("*.go")
	err := filepath.WalkDir("internal", func(path string, d os.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() && (d.Name() == "testdata" || d.Name() == "testkit" || strings.HasSuffix(d.Name(), "test")):
			return filepath.SkipDir
		case !d.IsDir() && strings.HasSuffix(path, ".go"):
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var product []string
	for _, path := range files {
		if !strings.HasSuffix(path, "_test.go") {
			product = append(product, path)
		}
	}
	return product
}

// errorMessage is the literal message of fmt.Errorf(msg, …) or errors.New(msg).
func errorMessage(n ast.Node) (string, bool) {
	call, ok := n.(*ast.CallExpr)
	if !ok || len(call.Args) == 0 {
		return "", false
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return "", false
	}
	pkg, ok := sel.X.(*ast.Ident)
	if !ok || !(pkg.Name == "fmt" && sel.Sel.Name == "Errorf" || pkg.Name == "errors" && sel.Sel.Name == "New") {
		return "", false
	}
	lit, ok := call.Args[0].(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	msg, err := strconv.Unquote(lit.Value)
	return msg, err == nil
}

// errorCatalog is the page that lists every error, one table row each.
const errorCatalog = "docs/errors.md"

// catalogEntries are the backticked causes in the first column of the
// tables of errorCatalog.
func catalogEntries(t *testing.T) map[string]bool {
	t.Helper()
	catalog, err := os.ReadFile(errorCatalog)
	if err != nil {
		t.Fatal(err)
	}
	entries := map[string]bool{}
	for _, line := range strings.Split(string(catalog), "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		first, _, _ := strings.Cut(strings.TrimPrefix(line, "| `"), "` |")
		entries[first] = true
	}
	return entries
}

func TestErrorCatalog(t *testing.T) {
	causes, entries := errorCauses(t), catalogEntries(t)
	var missing, stale []string
	for cause, where := range causes {
		if !entries[cause] {
			missing = append(missing, "| `"+cause+"` | | |  ("+where+")")
		}
	}
	for entry := range entries {
		if _, ok := causes[entry]; !ok {
			stale = append(stale, entry)
		}
	}
	sort.Strings(missing)
	sort.Strings(stale)
	if len(missing) > 0 {
		t.Errorf("%s lacks %d error(s) the code can print; add rows:\n%s", errorCatalog, len(missing), strings.Join(missing, "\n"))
	}
	if len(stale) > 0 {
		t.Errorf("%s lists %d error(s) the code no longer prints:\n%s", errorCatalog, len(stale), strings.Join(stale, "\n"))
	}
	if len(causes) < 30 {
		t.Errorf("found only %d errors in the code; is the scan broken?", len(causes))
	}
}
