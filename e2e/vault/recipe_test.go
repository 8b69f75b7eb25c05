package vault

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// recipeFile is the page the test runs.
var recipeFile = filepath.Join("..", "..", "docs", "vault.md")

// The auth methods of the recipe; each is a tag on its own blocks.
var methods = []string{"kubernetes", "jwt"}

// The example addresses and paths of the recipe, which the test replaces
// with its own.
const (
	exampleVault        = "https://vault.example.com:8200"
	exampleControlPlane = "https://control-plane.example.com:6443"
	exampleRemote       = "https://dev-cluster.example.com:6443"
	examplePodToken     = "/var/run/secrets/vault/token"
	exampleVaultCA      = "/etc/brokercred/vault-ca.pem"
)

// block is one fenced code block of the recipe: ```LANG TAG. An untagged
// sh block runs for every method, a tagged one for its method only; the
// "remote" sh block sets up the remote cluster once.
type block struct {
	lang, tag, text string
}

// recipe is the fenced blocks of docs/vault.md, in order.
type recipe []block

// readRecipe parses docs/vault.md. Blocks may be indented (inside list
// items): their lines lose the fence's indentation.
func readRecipe(t *testing.T) recipe {
	t.Helper()
	data, err := os.ReadFile(recipeFile)
	if err != nil {
		t.Fatal(err)
	}
	var r recipe
	var cur *block
	var indent string
	for _, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && strings.HasPrefix(trimmed, "```"):
			fields := strings.Fields(strings.TrimPrefix(trimmed, "```"))
			cur = &block{}
			if len(fields) > 0 {
				cur.lang = fields[0]
			}
			if len(fields) > 1 {
				cur.tag = fields[1]
			}
			indent = line[:len(line)-len(strings.TrimLeft(line, " "))]
		case cur != nil && trimmed == "```":
			r = append(r, *cur)
			cur = nil
		case cur != nil:
			cur.text += strings.TrimPrefix(line, indent) + "\n"
		}
	}
	if cur != nil {
		t.Fatalf("%s: a code block is not closed", recipeFile)
	}
	return r
}

// script is the shell of method m: every untagged sh block and every sh
// block tagged m, in order.
func (r recipe) script(m string) string {
	var parts []string
	for _, b := range r {
		if b.lang == "sh" && (b.tag == "" || b.tag == m) {
			parts = append(parts, b.text)
		}
	}
	return strings.Join(parts, "")
}

// only is the text of the one block of lang tagged tag, failing the test
// unless there is exactly one.
func (r recipe) only(t *testing.T, lang, tag string) string {
	t.Helper()
	var found []string
	for _, b := range r {
		if b.lang == lang && b.tag == tag {
			found = append(found, b.text)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s has %d ```%s %s blocks, want 1", recipeFile, len(found), lang, tag)
	}
	return found[0]
}

// authenticator is the jwt entry of method m's AuthenticationConfiguration
// block, for the Vault at vaultURL whose CA is caPEM.
func (r recipe) authenticator(t *testing.T, m, vaultURL string, caPEM []byte) map[string]any {
	t.Helper()
	var cfg struct {
		JWT []map[string]any `json:"jwt"`
	}
	text := strings.ReplaceAll(r.only(t, "yaml", m), exampleVault, vaultURL)
	if err := yaml.Unmarshal([]byte(text), &cfg); err != nil || len(cfg.JWT) != 1 {
		t.Fatalf("the %s AuthenticationConfiguration of %s: %v, %d jwt entries (want 1)", m, recipeFile, err, len(cfg.JWT))
	}
	a := cfg.JWT[0]
	if issuer, ok := a["issuer"].(map[string]any); ok && issuer["certificateAuthority"] != nil {
		issuer["certificateAuthority"] = string(caPEM)
	}
	return a
}

// TestRecipeShape checks, without any server, what the end-to-end test
// relies on: each method has its blocks, every example address and path
// the test replaces is there, and the Argo CD args of the page are the
// flags its jwt kubeconfig command passes (so renaming a flag breaks here
// before it misleads a reader).
func TestRecipeShape(t *testing.T) {
	r := readRecipe(t)
	r.only(t, "sh", "remote")
	for _, m := range methods {
		r.only(t, "yaml", m)
		script := r.script(m)
		for _, s := range []string{exampleVault, exampleControlPlane, exampleRemote, examplePodToken, exampleVaultCA, "> dev.kubeconfig"} {
			if !strings.Contains(script, s) {
				t.Errorf("the %s script of %s does not mention %s, which the test replaces or reads", m, recipeFile, s)
			}
		}
	}
	var argocd []string
	if err := json.Unmarshal([]byte(r.only(t, "json", "")), &argocd); err != nil {
		t.Fatalf("the Argo CD args of %s: %v", recipeFile, err)
	}
	if got, want := tokenFlags(argocd), tokenFlags(kubeconfigFlags(t, r.script("jwt"))); !slices.Equal(got, want) {
		t.Errorf("the Argo CD args of %s name the token flags %q; its jwt kubeconfig command passes %q", recipeFile, got, want)
	}
}

// kubeconfigFlags are the words after "brokercred config kubeconfig" in
// script, up to the redirection, with the line continuations undone and
// the command substitution of --command left out.
func kubeconfigFlags(t *testing.T, script string) []string {
	t.Helper()
	_, rest, ok := strings.Cut(strings.ReplaceAll(script, "\\\n", " "), "brokercred config kubeconfig")
	if !ok {
		t.Fatal("no brokercred config kubeconfig command")
	}
	rest, _, _ = strings.Cut(rest, ">")
	rest = strings.ReplaceAll(rest, `"$(command -v brokercred)"`, "brokercred")
	return strings.Fields(rest)
}

// tokenFlags are the token flags among args as sorted "--name=value",
// whether written "--name value" or "--name=value": every flag but the
// kubeconfig generator's own (--name, --server, --server-ca-file,
// --command), with --target added as --name implies it.
func tokenFlags(args []string) []string {
	var flags []string
	own := map[string]bool{"--server": true, "--server-ca-file": true, "--command": true}
	for i := 0; i < len(args); i++ {
		name, value, joined := strings.Cut(args[i], "=")
		if !joined && i+1 < len(args) {
			i++
			value = args[i]
		}
		switch {
		case name == "--name":
			flags = append(flags, "--target="+value)
		case !own[name]:
			flags = append(flags, name+"="+value)
		}
	}
	slices.Sort(flags)
	return flags
}
