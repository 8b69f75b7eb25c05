package main

import (
	"os"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/alecthomas/kong"

	"github.com/brokercred/brokercred/internal/config"
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

// TestConfigCommandsIgnoreTheEnvironment: a generator writes what its flags
// say. Every BROKERCRED_* variable the CLI knows is set (BROKERCRED_TARGET
// exported for a token call, say), yet each config command parses exactly
// as it does in an empty environment, while the token command still reads
// them.
func TestConfigCommandsIgnoreTheEnvironment(t *testing.T) {
	known := knownEnv(t)
	for name := range known {
		t.Setenv(name, "") // restored after the test
		if err := os.Unsetenv(name); err != nil {
			t.Fatal(err)
		}
	}
	commands := [][]string{
		{"config", "argocd-cluster", "--name=dev", "--server=https://dev.example.com", "--broker-url=https://broker.example.com/x"},
		{"config", "argocd-cluster", "--from-secret=-", "--broker-url=https://broker.example.com/x"},
		{"config", "kubeconfig", "--name=dev", "--server=https://dev.example.com", "--broker-url=https://broker.example.com/x"},
		{"config", "helm-values", "--broker-url=https://broker.example.com/x"},
		{"config", "clusterprofile-provider", "--broker-url=https://broker.example.com/x"},
	}
	clean := make([]configCmd, len(commands))
	for i, args := range commands {
		var c cli
		parse(t, &c, &c.globals, args)
		clean[i] = c.Config
	}
	for name, value := range known {
		t.Setenv(name, value)
	}
	for i, args := range commands {
		var c cli
		parse(t, &c, &c.globals, args)
		if !reflect.DeepEqual(c.Config, clean[i]) {
			t.Errorf("%q with every BROKERCRED_* variable set: the config commands' exec args (-want +got):\n-%q\n+%q", args, execArgs(clean[i]), execArgs(c.Config))
		}
	}
	var c cli
	parse(t, &c, &c.globals, []string{"token"})
	if c.Token.Target != known["BROKERCRED_TARGET"] {
		t.Errorf("token command's --target = %q with BROKERCRED_TARGET=%q: the token command must still read the environment", c.Token.Target, known["BROKERCRED_TARGET"])
	}
}

// execArgs are the exec args each config command would write, compact
// enough to read in a failure.
func execArgs(c configCmd) [][]string {
	return [][]string{
		config.ExecArgs(c.ArgocdCluster.Options), config.ExecArgs(c.Kubeconfig.Options),
		config.ExecArgs(c.HelmValues.Options), config.ExecArgs(c.ClusterProfileProvider.Options),
	}
}

// knownEnv maps every environment variable the token command's flags read
// to a value its flag accepts and that differs from the flag's default.
func knownEnv(t *testing.T) map[string]string {
	t.Helper()
	var c cli
	parser, err := kong.New(&c, kongOptions(&c.globals, new(secret.Set))...)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, node := range parser.Model.Children {
		if node.Name != "token" {
			continue
		}
		for _, f := range node.Flags {
			for _, name := range f.Envs {
				env[name] = envValue(f)
			}
		}
	}
	if env["BROKERCRED_TARGET"] == "" || env["BROKERCRED_CACHE_DIR"] == "" {
		t.Fatalf("the token command reads %d variables, not BROKERCRED_TARGET and BROKERCRED_CACHE_DIR", len(env))
	}
	return env
}

// envValue is a value flag f parses that is not its default.
func envValue(f *kong.Flag) string {
	switch {
	case f.IsBool():
		return "true"
	case f.Enum != "":
		enum := f.EnumSlice()
		if enum[len(enum)-1] != f.Default {
			return enum[len(enum)-1]
		}
		return enum[0]
	case f.Target.Type() == reflect.TypeFor[time.Duration]():
		return "7m"
	}
	return "/from/the/environment"
}
