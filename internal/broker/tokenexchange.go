package broker

import (
	"context"
	"fmt"
	"net/url"
	"strings"
)

// Token types of RFC 8693 section 3.
const (
	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
	TokenTypeIDToken     = "urn:ietf:params:oauth:token-type:id_token"
	TokenTypeJWT         = "urn:ietf:params:oauth:token-type:jwt"
)

const grantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"

// TokenExchange is OAuth 2.0 Token Exchange (RFC 8693) at a token endpoint
// (Dex, Keycloak, cloud STSs): the pod token is the subject token, the
// target the audience. It authenticates as the shared OAuthClient, by HTTP
// Basic when a secret file is set, else by client_id in the form. Empty
// token types mean an access token for an ID token.
type TokenExchange struct {
	ConnectorID        string `name:"connector-id" env:"BROKERCRED_CONNECTOR_ID" placeholder:"ID" help:"Dex connector that verifies the pod token."`
	RequestedTokenType string `name:"requested-token-type" env:"BROKERCRED_REQUESTED_TOKEN_TYPE" default:"urn:ietf:params:oauth:token-type:access_token" placeholder:"URN" help:"Token type to ask for (default: access_token)."`
	SubjectTokenType   string `name:"subject-token-type" env:"BROKERCRED_SUBJECT_TOKEN_TYPE" default:"urn:ietf:params:oauth:token-type:id_token" placeholder:"URN" help:"How to present the pod token: id_token (what Dex verifies against the cluster's issuer) or …:jwt for other STSs (default: id_token)."`

	oauth OAuthClient `kong:"-"` // the shared OAuth flags, set by Choose
}

// endpointHint says where token endpoints live.
func (TokenExchange) endpointHint() string {
	return "check --broker-url is the token endpoint (Dex: https://HOST/token)"
}

// fetch performs one token exchange for call.Target.
func (x TokenExchange) fetch(ctx context.Context, c *Client, call Call) (Token, error) {
	oc := x.oauth
	secret, err := oc.clientSecret(call)
	if err != nil {
		return Token{}, err
	}
	user := ""
	if secret != "" {
		user = oc.ClientID
	}
	refuse := func(e oauthError) error {
		return fmt.Errorf("broker %s refused the token exchange: %s; %s", c.Host(), e.quoted(), x.hint(e, call.Target))
	}
	return c.postForm(ctx, call, x.form(call, secret == ""), user, secret, "token exchange", x.endpointHint(), refuse)
}

// audience is the audience asked for: --audience, else the target.
func (x TokenExchange) audience(target string) string {
	if a := x.oauth.Audience; a != "" {
		return strings.ReplaceAll(a, "{target}", target)
	}
	return target
}

// form is the RFC 8693 request body for call.
func (x TokenExchange) form(call Call, withClientID bool) url.Values {
	oc := x.oauth
	form := url.Values{
		"grant_type":           {grantTokenExchange},
		"subject_token":        {call.PodToken},
		"subject_token_type":   {orDefault(x.SubjectTokenType, TokenTypeIDToken)},
		"requested_token_type": {orDefault(x.RequestedTokenType, TokenTypeAccessToken)},
		"audience":             {x.audience(call.Target)},
	}
	if x.ConnectorID != "" {
		form.Set("connector_id", x.ConnectorID)
	}
	if scope := oc.scope(call.Target); scope != "" {
		form.Set("scope", scope)
	}
	if withClientID && oc.ClientID != "" {
		form.Set("client_id", oc.ClientID)
	}
	return form
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (x TokenExchange) hint(e oauthError, target string) string {
	switch e.Code {
	case "invalid_client", "unauthorized_client":
		return fmt.Sprintf("check --client-id %q and --client-secret-file, and that the client may use the token-exchange grant", x.oauth.ClientID)
	case "access_denied": // Dex's answer: its connector could not verify the token
		return "Dex did not accept the pod token: check that the connector --connector-id names has the cluster's ServiceAccount issuer, that Dex can fetch its discovery document and keys (rootCAs), and that the pod token has not expired"
	case "invalid_grant":
		return "the broker did not accept the pod token: check that it trusts the cluster's ServiceAccount issuer and accepts the pod token's audience"
	case "invalid_target":
		return fmt.Sprintf("the broker will not issue a token for audience %q; check --audience or --target", x.audience(target))
	case "invalid_scope":
		return "check --scope"
	case "unsupported_grant_type":
		return "the broker does not offer token exchange here; enable the grant or check --broker-url is its token endpoint"
	}
	return "check --broker-url, --connector-id, --subject-token-type and the broker's logs"
}
