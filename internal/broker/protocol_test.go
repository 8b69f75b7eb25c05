package broker_test

import (
	"bytes"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/brokercred/brokercred/internal/broker"
)

// spec is what this test knows of each protocol, independently of the
// table: the Settings field holding its own settings, and whether it acts as
// the shared OAuth client.
var spec = map[string]struct {
	group     string
	usesOAuth bool
}{
	"get-target-token": {group: "GetTargetToken"},
	"token-exchange":   {group: "TokenExchange", usesOAuth: true},
	"vault":            {group: "Vault"},
	"client-assertion": {group: "ClientAssertion", usesOAuth: true},
}

// settingsFields are every settings field of every group in Settings, the
// shared OAuth client's included, as group and field.
func settingsFields(t *testing.T) [][2]reflect.StructField {
	t.Helper()
	var all [][2]reflect.StructField
	st := reflect.TypeFor[broker.Settings]()
	for i := range st.NumField() {
		group := st.Field(i)
		for j := range group.Type.NumField() {
			f := group.Type.Field(j)
			if !f.IsExported() {
				if f.Tag.Get("kong") != "-" {
					t.Errorf("%s.%s is unexported but not hidden from kong (kong:\"-\")", group.Name, f.Name)
				}
				continue
			}
			all = append(all, [2]reflect.StructField{group, f})
		}
	}
	return all
}

// TestEverySettingChangesTheIdentity sets, by reflection, every field of
// every settings group in turn: the identity of a protocol must change when
// the field is one of its own or a shared OAuth field it uses, and must not
// change otherwise (another protocol's setting must not split its cache).
func TestEverySettingChangesTheIdentity(t *testing.T) {
	for _, name := range broker.Names() {
		want, ok := spec[name]
		if !ok {
			t.Errorf("protocol %s is not in this test's spec: add it", name)
			continue
		}
		base := identityWith(t, name, nil)
		for _, gf := range settingsFields(t) {
			group, f := gf[0], gf[1]
			changed := identityWith(t, name, &gf)
			uses := group.Name == want.group || (group.Name == "OAuth" && want.usesOAuth)
			switch {
			case uses && bytes.Equal(base, changed):
				t.Errorf("%s: %s.%s changes the token but not the identity: add it to the table row's settings", name, group.Name, f.Name)
			case !uses && !bytes.Equal(base, changed):
				t.Errorf("%s: %s.%s is not the protocol's setting but changes its identity", name, group.Name, f.Name)
			}
		}
	}
	if len(spec) != len(broker.Names()) {
		t.Errorf("spec has %d protocols, the table %d", len(spec), len(broker.Names()))
	}
}

// TestDifferentSettingsNeverShareAnEntry: for each protocol, configurations
// differing in any one setting it uses give different identities, all
// different from each other and from the zero settings.
func TestDifferentSettingsNeverShareAnEntry(t *testing.T) {
	for _, name := range broker.Names() {
		seen := map[string]string{string(identityWith(t, name, nil)): "the zero settings"}
		for _, gf := range settingsFields(t) {
			group, f := gf[0], gf[1]
			if group.Name != spec[name].group && (group.Name != "OAuth" || !spec[name].usesOAuth) {
				continue
			}
			k := string(identityWith(t, name, &gf))
			if other, ok := seen[k]; ok {
				t.Errorf("%s: %s.%s and %s give the same identity", name, group.Name, f.Name, other)
			}
			seen[k] = group.Name + "." + f.Name
		}
	}
}

// TestNoSettingHoldsASecret: a setting is part of the identity, which doctor
// prints and the cache hashes, so a secret must come from a file, read on
// every call: a flag that names a secret must take a file.
func TestNoSettingHoldsASecret(t *testing.T) {
	for _, gf := range settingsFields(t) {
		flag := gf[1].Tag.Get("name")
		for _, word := range []string{"secret", "password", "passwd", "credential", "private", "assertion"} {
			if strings.Contains(flag, word) && !strings.HasSuffix(flag, "-file") {
				t.Errorf("--%s (%s.%s) names a secret but takes no file: secrets come from files, never from flags", flag, gf[0].Name, gf[1].Name)
			}
		}
	}
}

// identityWith is protocol name's identity with the settings field gf set
// to a non-zero value, or with the zero settings when gf is nil.
func identityWith(t *testing.T, name string, gf *[2]reflect.StructField) []byte {
	t.Helper()
	var s broker.Settings
	if gf != nil {
		v := reflect.ValueOf(&s).Elem().FieldByName(gf[0].Name).FieldByName(gf[1].Name)
		switch v.Kind() {
		case reflect.String:
			v.SetString("VALUE")
		case reflect.Bool:
			v.SetBool(true)
		case reflect.Int64:
			v.SetInt(int64(time.Minute))
		case reflect.Slice:
			v.Set(reflect.ValueOf([]string{"VALUE"}))
		default:
			t.Fatalf("%s.%s: no test value for a %s", gf[0].Name, gf[1].Name, v.Kind())
		}
	}
	p, err := broker.Choose(name, s)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != name {
		t.Errorf("Choose(%q).Name = %q", name, p.Name)
	}
	return p.Identity
}

func TestProtocolTable(t *testing.T) {
	want := []string{"get-target-token", "token-exchange", "vault", "client-assertion"}
	if got := broker.Names(); !slices.Equal(got, want) {
		t.Errorf("Names = %v, want %v", got, want)
	}
	if got := broker.Accepted(); !slices.Equal(got, []string{"get-target-token", "get", "token-exchange", "vault", "client-assertion"}) {
		t.Errorf("Accepted = %v", got)
	}
	aliases := map[string]string{"get": "get-target-token", "": "get-target-token"}
	for _, name := range want {
		aliases[name] = name
	}
	for alias, want := range aliases {
		if got, err := broker.Canonical(alias); got != want || err != nil {
			t.Errorf("Canonical(%q) = %q, %v; want %q", alias, got, err, want)
		}
	}
	_, err := broker.Canonical("soap")
	if err == nil || !strings.Contains(err.Error(), `unknown protocol "soap"; set --protocol to one of get-target-token, token-exchange, vault, client-assertion`) {
		t.Errorf("Canonical(soap) = %v", err)
	}
}

// TestEveryProtocolIsFuzzed holds the fuzz list to the registry: each
// protocol's answer parser has a fuzz target named Fuzz<Protocol>Answer in
// this package, which .ci/fuzz finds by itself.
func TestEveryProtocolIsFuzzed(t *testing.T) {
	files, _ := filepath.Glob("*_fuzz_test.go")
	fset := token.NewFileSet()
	targets := map[string]bool{}
	for _, file := range files {
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for name, obj := range f.Scope.Objects {
			if strings.HasPrefix(name, "Fuzz") && obj.Kind.String() == "func" {
				targets[name] = true
			}
		}
	}
	for _, name := range broker.Names() {
		want := "Fuzz" + camel(name) + "Answer"
		if !targets[want] {
			t.Errorf("protocol %s has no fuzz target %s in %v", name, want, files)
		}
	}
}

// camel turns get-target-token into GetTargetToken.
func camel(name string) string {
	var b strings.Builder
	for _, part := range strings.Split(name, "-") {
		r := []rune(part)
		b.WriteRune(unicode.ToUpper(r[0]))
		b.WriteString(string(r[1:]))
	}
	return b.String()
}
