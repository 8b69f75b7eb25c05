package main

import (
	"reflect"
	"sort"
	"testing"

	"github.com/alecthomas/kong"

	"github.com/brokercred/brokercred/internal/secret"
)

// TestCommandNamesMatchKong keeps isTokenCall's list of other commands in
// step with the commands kong actually builds from cli.
func TestCommandNamesMatchKong(t *testing.T) {
	var c cli
	parser, err := kong.New(&c, kongOptions(&c.globals, new(secret.Set))...)
	if err != nil {
		t.Fatal(err)
	}
	var fromKong []string
	for _, node := range parser.Model.Children {
		if node.Name != "token" {
			fromKong = append(fromKong, node.Name)
		}
	}
	var ours []string
	for name := range commandNames(reflect.TypeFor[cli]()) {
		ours = append(ours, name)
	}
	sort.Strings(fromKong)
	sort.Strings(ours)
	if !reflect.DeepEqual(ours, fromKong) {
		t.Errorf("commandNames = %v, kong's commands = %v", ours, fromKong)
	}
}

// TestTokenCallParsesLikeTheFullCLI checks that the fast path gives the
// token command exactly what the full CLI would.
func TestTokenCallParsesLikeTheFullCLI(t *testing.T) {
	for _, args := range [][]string{
		{"--broker-url", "https://b/x", "--target", "dev"},
		{"token", "-v", "--broker-url=https://b/x", "--target=dev", "--timeout", "3s", "--no-cache"},
		{"--protocol", "token-exchange", "--scope", "openid", "--scope", "profile", "--client-id", "argocd", "--allowed-targets", "dev-*,prod"},
		{},
	} {
		if !isTokenCall(args) {
			t.Errorf("isTokenCall(%q) = false, want true", args)
			continue
		}
		var fast tokenCLI
		var full cli
		parse(t, &fast, &fast.globals, args)
		parse(t, &full, &full.globals, args)
		if !reflect.DeepEqual(fast.Token, full.Token) || fast.globals != full.globals {
			t.Errorf("args %q: fast path parsed %+v, full CLI %+v", args, fast.Token, full.Token)
		}
	}
	for _, args := range [][]string{{"doctor"}, {"cache", "list"}, {"--help"}, {"-h"}, {"config", "kubeconfig"}, {"version"}} {
		if isTokenCall(args) {
			t.Errorf("isTokenCall(%q) = true, want false", args)
		}
	}
}

func parse(t *testing.T, grammar any, g *globals, args []string) {
	t.Helper()
	parser, err := kong.New(grammar, kongOptions(g, new(secret.Set))...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parser.Parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
}

// BenchmarkParse measures what kong costs a credential call: building the
// model of the full CLI, or of the token command alone (the fast path).
func BenchmarkParse(b *testing.B) {
	args := []string{"--broker-url", "https://b/x", "--target", "dev"}
	b.Run("full", func(b *testing.B) {
		for b.Loop() {
			var c cli
			benchParse(b, &c, &c.globals, args)
		}
	})
	b.Run("token", func(b *testing.B) {
		for b.Loop() {
			var c tokenCLI
			benchParse(b, &c, &c.globals, args)
		}
	})
}

func benchParse(b *testing.B, grammar any, g *globals, args []string) {
	parser, err := kong.New(grammar, kongOptions(g, new(secret.Set))...)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := parser.Parse(args); err != nil {
		b.Fatal(err)
	}
}
