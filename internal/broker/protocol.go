package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// Protocol is one broker API: how to trade a pod token for a token for a
// target, and how to explain that API's failures. Each lives in its own
// file as a struct whose fields are its settings; Protocols lists them.
type Protocol interface {
	// Fetch asks the broker at c for a token for call.Target. Use the
	// package's Fetch, which adds the checks every protocol shares.
	Fetch(ctx context.Context, c *Client, call Call) (Token, error)
	// EndpointHint says where the protocol's endpoint lives, for a 404.
	EndpointHint() string
}

// Protocols holds every protocol's settings, one field each, and is the
// registry of protocols: the `protocol` tag names a field's protocol (its
// API name first, then accepted aliases); kong declares each field's flags
// as a group. Adding a protocol is adding a field here.
//
// A settings field changes the token a protocol obtains, so it is part of
// the cache key (see Key), unless its tag says `cache:"secret"`: a secret
// never enters a key. The zero value holds every protocol with its zero
// settings.
type Protocols struct {
	// OAuth is the OAuth client settings that token-exchange and
	// client-assertion share: one flag, one meaning.
	OAuth OAuthClient `embed:"" group:"oauth"`

	GetTargetToken  GetTargetToken  `protocol:"get-target-token,get" embed:"" group:"get-target-token"`
	TokenExchange   TokenExchange   `protocol:"token-exchange" embed:"" group:"token-exchange"`
	Vault           Vault           `protocol:"vault" embed:"" group:"vault"`
	ClientAssertion ClientAssertion `protocol:"client-assertion" embed:"" group:"client-assertion"`
}

// DefaultProtocol is the protocol used when none is named.
const DefaultProtocol = "get-target-token"

// registered is one entry of Protocols.
type registered struct {
	names    []string // API name first, then aliases
	protocol Protocol
	settings reflect.Value
}

// registry lists ps's protocols in declaration order, each bound to its
// settings in ps.
func (ps *Protocols) registry() []registered {
	v := reflect.ValueOf(ps).Elem()
	var all []registered
	for i := range v.NumField() {
		tag, ok := v.Type().Field(i).Tag.Lookup("protocol")
		if !ok {
			continue
		}
		p := v.Field(i).Addr().Interface().(Protocol)
		if u, ok := p.(usesOAuth); ok {
			u.bindOAuth(&ps.OAuth)
		}
		all = append(all, registered{names: strings.Split(tag, ","), protocol: p, settings: v.Field(i)})
	}
	return all
}

// Names lists every protocol's API name, in declaration order.
func Names() []string {
	var names []string
	for _, r := range new(Protocols).registry() {
		names = append(names, r.names[0])
	}
	return names
}

// Accepted lists every name --protocol accepts: API names and aliases.
func Accepted() []string {
	var names []string
	for _, r := range new(Protocols).registry() {
		names = append(names, r.names...)
	}
	return names
}

// Canonical is the API name of the protocol called name (an alias gives its
// protocol's API name; empty gives DefaultProtocol), or an error naming the
// protocols there are.
func Canonical(name string) (string, error) {
	r, err := new(Protocols).lookup(name)
	if err != nil {
		return "", err
	}
	return r.names[0], nil
}

// Lookup returns the protocol called name (an API name or an alias; empty
// means DefaultProtocol), bound to its settings in ps.
func (ps *Protocols) Lookup(name string) (Protocol, error) {
	r, err := ps.lookup(name)
	return r.protocol, err
}

func (ps *Protocols) lookup(name string) (registered, error) {
	if name == "" {
		name = DefaultProtocol
	}
	for _, r := range ps.registry() {
		for _, n := range r.names {
			if n == name {
				return r, nil
			}
		}
	}
	return registered{}, fmt.Errorf("unknown protocol %q; set --protocol to one of %s", name, strings.Join(Names(), ", "))
}

// Key is what the protocol called name, as ps configures it, contributes to
// a cache key: its API name and every setting that changes the token it
// obtains (its own, and the shared OAuth client's when it uses them),
// secrets left out. Two
// configurations that differ in any such setting get different keys.
func (ps *Protocols) Key(name string) ([]byte, error) {
	r, err := ps.lookup(name)
	if err != nil {
		return nil, err
	}
	key := []any{r.names[0], keyedFields(r.settings)}
	if _, ok := r.protocol.(usesOAuth); ok {
		key = append(key, keyedFields(reflect.ValueOf(ps.OAuth)))
	}
	return json.Marshal(key)
}

// usesOAuth is a protocol that acts as the shared OAuth client; the
// registry binds it to Protocols.OAuth.
type usesOAuth interface{ bindOAuth(*OAuthClient) }

// keyedFields maps each field of the settings struct v to its value, but
// those tagged `cache:"secret"`.
func keyedFields(v reflect.Value) map[string]any {
	fields := map[string]any{}
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if f.Tag.Get("cache") == "secret" || !f.IsExported() {
			continue
		}
		fields[f.Name] = v.Field(i).Interface()
	}
	return fields
}
