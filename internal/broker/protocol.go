package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// protocol is one broker API: how to trade a pod token for a token for a
// target, and how to explain that API's failures. Each lives in its own file
// as a struct whose fields are its settings; protocols lists them. Its
// methods are unexported so that nothing outside this package can fetch
// without Fetch's checks.
type protocol interface {
	// fetch asks the broker at c for a token for call.Target.
	fetch(ctx context.Context, c *Client, call Call) (Token, error)
	// endpointHint says where the protocol's endpoint lives, for a 404.
	endpointHint() string
}

// Settings holds every protocol's settings, one flag group each, as kong
// declares them. The zero value holds every protocol with its zero settings.
type Settings struct {
	// OAuth is the OAuth client settings that token-exchange and
	// client-assertion share: one flag, one meaning.
	OAuth OAuthClient `embed:"" group:"oauth"`

	GetTargetToken  GetTargetToken  `embed:"" group:"get-target-token"`
	TokenExchange   TokenExchange   `embed:"" group:"token-exchange"`
	Vault           Vault           `embed:"" group:"vault"`
	ClientAssertion ClientAssertion `embed:"" group:"client-assertion"`
}

// registered is one row of the protocol table.
type registered struct {
	name    string   // the API name, which generators write
	aliases []string // other names --protocol accepts
	// choose is the protocol as s configures it, and every setting of s
	// that changes the token it obtains.
	choose func(s Settings) (p protocol, settings any)
}

// protocols is the table of every protocol brokercred speaks, in the order
// help lists them. Adding a protocol is adding its file and a row here. It
// is never written.
var protocols = []registered{
	{name: "get-target-token", aliases: []string{"get"}, choose: func(s Settings) (protocol, any) {
		return s.GetTargetToken, s.GetTargetToken
	}},
	{name: "token-exchange", choose: func(s Settings) (protocol, any) {
		x := s.TokenExchange
		x.oauth = s.OAuth
		return x, [2]any{s.TokenExchange, s.OAuth}
	}},
	{name: "vault", choose: func(s Settings) (protocol, any) {
		return s.Vault, s.Vault
	}},
	{name: "client-assertion", choose: func(s Settings) (protocol, any) {
		a := s.ClientAssertion
		a.oauth = s.OAuth
		return a, [2]any{s.ClientAssertion, s.OAuth}
	}},
}

// DefaultProtocol is the protocol used when none is named.
const DefaultProtocol = "get-target-token"

// Names lists every protocol's API name, in table order.
func Names() []string {
	names := make([]string, 0, len(protocols))
	for _, r := range protocols {
		names = append(names, r.name)
	}
	return names
}

// Accepted lists every name --protocol accepts: API names and aliases.
func Accepted() []string {
	var names []string
	for _, r := range protocols {
		names = append(append(names, r.name), r.aliases...)
	}
	return names
}

// Chosen is the protocol of one call, resolved once from its name and
// settings. The zero value is no protocol; use Choose.
type Chosen struct {
	// Name is the protocol's API name (an alias resolved).
	Name string
	// Identity is the name and every setting that changes the token the
	// protocol obtains, as JSON: two configurations that differ in any such
	// setting have different identities. Settings hold no secret (secrets
	// come from files, read on every call), so it holds none.
	Identity []byte

	protocol protocol
}

// Choose resolves the protocol called name (an API name or an alias; empty
// means DefaultProtocol) as s configures it, or says which protocols exist.
func Choose(name string, s Settings) (Chosen, error) {
	if name == "" {
		name = DefaultProtocol
	}
	for _, r := range protocols {
		if r.name == name || slices.Contains(r.aliases, name) {
			p, settings := r.choose(s)
			identity, err := json.Marshal([2]any{r.name, settings})
			if err != nil {
				return Chosen{}, fmt.Errorf("encode the settings of protocol %s: %w", r.name, err)
			}
			return Chosen{Name: r.name, Identity: identity, protocol: p}, nil
		}
	}
	return Chosen{}, fmt.Errorf("unknown protocol %q; set --protocol to one of %s", name, strings.Join(Names(), ", "))
}

// Canonical is the API name of the protocol called name (an alias gives its
// protocol's API name; empty gives DefaultProtocol), or an error naming the
// protocols there are.
func Canonical(name string) (string, error) {
	c, err := Choose(name, Settings{})
	return c.Name, err
}
