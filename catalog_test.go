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

// The README's "When it fails" section lists every error brokercred can
// print. An error is a fmt.Errorf or errors.New call whose message names a
// fix after "; ". The catalog quotes each message's cause (the part before
// the first "; ", with each formatting verb shown as …) in backticks. This
// test keeps the catalog and the code from drifting in either direction.

var verb = regexp.MustCompile(`%[-+# 0-9.]*[a-zA-Z]`)

// errorCauses collects the causes of the user-facing errors in the
// product's Go files (not tests, not the demo or benchmarks).
func errorCauses(t *testing.T) map[string]string {
	t.Helper()
	causes := map[string]string{}
	fset := token.NewFileSet()
	for _, dir := range []string{".", "internal/broker", "internal/cache", "internal/plugin", "internal/install", "internal/config", "internal/token", "internal/secret"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, path := range files {
			if strings.HasSuffix(path, "_test.go") {
				continue
			}
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
	}
	return causes
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

// catalogEntries are the backticked causes in the first column of the
// README's "When it fails" table.
func catalogEntries(t *testing.T) map[string]bool {
	t.Helper()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## When it fails\n")
	if !ok {
		t.Fatal(`README.md has no "## When it fails" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	entries := map[string]bool{}
	for _, line := range strings.Split(section, "\n") {
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
		t.Errorf("README's error catalog lacks %d error(s) the code can print; add rows:\n%s", len(missing), strings.Join(missing, "\n"))
	}
	if len(stale) > 0 {
		t.Errorf("README's error catalog lists %d error(s) the code no longer prints:\n%s", len(stale), strings.Join(stale, "\n"))
	}
	if len(causes) < 30 {
		t.Errorf("found only %d errors in the code; is the scan broken?", len(causes))
	}
}
