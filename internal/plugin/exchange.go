package plugin

import (
	"encoding/json"

	"github.com/brokercred/brokercred/internal/broker"
)

// TokenExchange are the settings of --protocol token-exchange (RFC 8693).
type TokenExchange struct {
	Audience           string   `name:"audience" env:"BROKERCRED_AUDIENCE" placeholder:"AUD" help:"Audience to ask for (default: --target)."`
	ClientID           string   `name:"client-id" env:"BROKERCRED_CLIENT_ID" placeholder:"ID" help:"OAuth client brokercred authenticates as."`
	ClientSecretFile   string   `name:"client-secret-file" env:"BROKERCRED_CLIENT_SECRET_FILE" placeholder:"FILE" help:"File holding the client secret, read on every call (omit for a public client)."`
	ConnectorID        string   `name:"connector-id" env:"BROKERCRED_CONNECTOR_ID" placeholder:"ID" help:"Dex connector that verifies the pod token."`
	Scopes             []string `name:"scope" env:"BROKERCRED_SCOPE" placeholder:"SCOPE" help:"Scope to ask for (repeatable)."`
	RequestedTokenType string   `name:"requested-token-type" env:"BROKERCRED_REQUESTED_TOKEN_TYPE" default:"urn:ietf:params:oauth:token-type:access_token" placeholder:"URN" help:"Token type to ask for (default: access_token)."`
	SubjectTokenType   string   `name:"subject-token-type" env:"BROKERCRED_SUBJECT_TOKEN_TYPE" default:"urn:ietf:params:oauth:token-type:id_token" placeholder:"URN" help:"How to present the pod token: id_token (what Dex verifies against the cluster's issuer) or …:jwt for other STSs (default: id_token)."`
}

func (t TokenExchange) settings() broker.Exchange {
	return broker.Exchange{Audience: t.Audience, ClientID: t.ClientID, ClientSecretFile: t.ClientSecretFile,
		ConnectorID: t.ConnectorID, Scopes: t.Scopes, RequestedTokenType: t.RequestedTokenType, SubjectTokenType: t.SubjectTokenType}
}

// cacheRequest names every setting that changes the issued token, for the
// cache key. The secret file's path is left out: rotating the secret does
// not change what the token is for.
func (t TokenExchange) cacheRequest() string {
	b, _ := json.Marshal([]any{t.Audience, t.ClientID, t.ConnectorID, t.Scopes, t.RequestedTokenType, t.SubjectTokenType})
	return string(b)
}
