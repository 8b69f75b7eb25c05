package credential

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"github.com/brokercred/brokercred/internal/broker"
	"github.com/brokercred/brokercred/internal/plugin"
)

// optionRoles says, for every option besides the protocols' settings, how
// it bears on which cached token a call may be served: "key" options are in
// the cache key; "read" options are applied to every entry when it is read
// (TestFaults' read-limit cases hold them); the others cannot change the
// token a broker issues for the key.
var optionRoles = map[string]string{
	"BrokerURL":        "key",
	"Target":           "key",
	"Protocol":         "key",
	"TokenFile":        "the identity read from the token is keyed, not its path",
	"CAFile":           "how the broker is reached",
	"Timeout":          "the call's budget",
	"RefreshMargin":    "read",
	"DefaultTTL":       "read",
	"MaxTTL":           "read",
	"InsecureHTTP":     "how the broker is reached",
	"CacheDir":         "where the cache is",
	"NoCache":          "whether the cache is used",
	"ClusterConfigKey": "names the target, which is keyed",
	"AllowedTargets":   "refuses targets; changes no token",
}

// TestEveryOptionHasARoleInTheCache: a new option fails here until it says
// how it bears on the cache, and every "key" option changes the key.
func TestEveryOptionHasARoleInTheCache(t *testing.T) {
	typ := reflect.TypeFor[Options]()
	pod := podToken{value: "opaque", claims: broker.Claims{Issuer: "https://issuer", Subject: "system:serviceaccount:a:b"}}
	keyOf := func(o Options) []byte {
		p, err := broker.Choose(o.Protocol, o.Settings)
		if err != nil {
			t.Fatal(err)
		}
		k, err := o.cacheKey(p, pod, plugin.ExecInfo{})
		if err != nil {
			t.Fatal(err)
		}
		return k.ID
	}
	base := keyOf(Options{})
	for i := range typ.NumField() {
		f := typ.Field(i)
		if f.Anonymous {
			continue // the protocols' settings: broker's TestEverySettingChangesTheIdentity
		}
		role, ok := optionRoles[f.Name]
		if !ok {
			t.Errorf("option %s has no role in optionRoles: say whether it is keyed, applied on read, or changes no token", f.Name)
			continue
		}
		if role != "key" {
			continue
		}
		var o Options
		v := reflect.ValueOf(&o).Elem().Field(i)
		switch v.Kind() {
		case reflect.String:
			v.SetString("vault")
		case reflect.Int64:
			v.SetInt(int64(time.Minute))
		default:
			t.Fatalf("%s: no test value for a %s", f.Name, v.Kind())
		}
		if bytes.Equal(keyOf(o), base) {
			t.Errorf("option %s is a key option but does not change the cache key", f.Name)
		}
	}
}
