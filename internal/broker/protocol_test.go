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

// settingsStructs are every settings struct the registry holds, by field
// name: each protocol's, and the shared OAuth client.
func settingsStructs() map[string]reflect.Type {
	all := map[string]reflect.Type{}
	t := reflect.TypeFor[broker.Protocols]()
	for i := range t.NumField() {
		all[t.Field(i).Name] = t.Field(i).Type
	}
	return all
}

// TestEverySettingIsKeyedOrSecret walks every protocol's settings by
// reflection: setting any field to a non-zero value must change the
// protocol's cache key, unless the field is tagged `cache:"secret"`, in
// which case the key must not change nor hold the value. An unexported
// field is neither and fails, but the shared OAuth client a protocol is
// bound to.
func TestEverySettingIsKeyedOrSecret(t *testing.T) {
	for _, name := range broker.Names() {
		for group, typ := range settingsStructs() {
			for i := range typ.NumField() {
				f := typ.Field(i)
				if !f.IsExported() {
					if f.Type.Name() != "boundOAuth" {
						t.Errorf("%s.%s is unexported: it can be neither keyed nor marked secret", group, f.Name)
					}
					continue
				}
				base, changed := keyWith(t, name, group, f, false), keyWith(t, name, group, f, true)
				secret := f.Tag.Get("cache") == "secret"
				usedBy := group == "OAuth" || protocolField(name) == group
				switch {
				case secret && !bytes.Equal(base, changed):
					t.Errorf("%s: secret field %s.%s changes the cache key", name, group, f.Name)
				case secret && bytes.Contains(changed, []byte("SECRET-VALUE")):
					t.Errorf("%s: secret field %s.%s appears in the cache key", name, group, f.Name)
				case !secret && usedBy && group == "OAuth" && !usesOAuth(name):
				case !secret && usedBy && bytes.Equal(base, changed):
					t.Errorf("%s: field %s.%s changes the token but not the cache key: tag it, or key it", name, group, f.Name)
				}
			}
		}
	}
}

// TestDifferentSettingsNeverShareAnEntry: for each protocol, two
// configurations differing in any one keyed setting give different keys,
// and all of them differ from each other.
func TestDifferentSettingsNeverShareAnEntry(t *testing.T) {
	for _, name := range broker.Names() {
		seen := map[string]string{}
		for group, typ := range settingsStructs() {
			if group != protocolField(name) && (group != "OAuth" || !usesOAuth(name)) {
				continue
			}
			for i := range typ.NumField() {
				f := typ.Field(i)
				if !f.IsExported() || f.Tag.Get("cache") == "secret" {
					continue
				}
				k := keyWith(t, name, group, f, true)
				if other, ok := seen[string(k)]; ok {
					t.Errorf("%s: %s.%s and %s give the same key", name, group, f.Name, other)
				}
				seen[string(k)] = group + "." + f.Name
			}
		}
		if other := seen[string(keyWith(t, name, "", reflect.StructField{}, false))]; other != "" {
			t.Errorf("%s: the zero settings share a key with %s", name, other)
		}
	}
}

// usesOAuth reports whether protocol name acts as the shared OAuth client:
// its key changes with the client id.
func usesOAuth(name string) bool {
	var a, b broker.Protocols
	b.OAuth.ClientID = "x"
	ka, _ := a.Key(name)
	kb, _ := b.Key(name)
	return !bytes.Equal(ka, kb)
}

// protocolField is the Protocols field that holds protocol name.
func protocolField(name string) string {
	t := reflect.TypeFor[broker.Protocols]()
	for i := range t.NumField() {
		if names := strings.Split(t.Field(i).Tag.Get("protocol"), ","); slices.Contains(names, name) {
			return t.Field(i).Name
		}
	}
	return ""
}

// keyWith is protocol name's cache key with field f of settings group set
// to a non-zero value (set) or left zero.
func keyWith(t *testing.T, name, group string, f reflect.StructField, set bool) []byte {
	t.Helper()
	var ps broker.Protocols
	if set {
		v := reflect.ValueOf(&ps).Elem().FieldByName(group).FieldByName(f.Name)
		switch v.Kind() {
		case reflect.String:
			v.SetString("SECRET-VALUE")
		case reflect.Bool:
			v.SetBool(true)
		case reflect.Int64:
			v.SetInt(int64(time.Minute))
		case reflect.Slice:
			v.Set(reflect.ValueOf([]string{"SECRET-VALUE"}))
		default:
			t.Fatalf("%s.%s: no test value for a %s", group, f.Name, v.Kind())
		}
	}
	k, err := ps.Key(name)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestRegistry(t *testing.T) {
	if got := broker.Names(); !slices.Equal(got[:2], []string{"get-target-token", "token-exchange"}) {
		t.Errorf("Names = %v", got)
	}
	for alias, want := range map[string]string{"get": "get-target-token", "": "get-target-token", "token-exchange": "token-exchange"} {
		if got, err := broker.Canonical(alias); got != want || err != nil {
			t.Errorf("Canonical(%q) = %q, %v; want %q", alias, got, err, want)
		}
	}
	_, err := broker.Canonical("soap")
	if err == nil || !strings.Contains(err.Error(), `unknown protocol "soap"; set --protocol to one of get-target-token, token-exchange, vault`) {
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
