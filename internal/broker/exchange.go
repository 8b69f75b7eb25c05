package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// ProtocolTokenExchange is OAuth 2.0 Token Exchange (RFC 8693) at a token
// endpoint: Dex, Keycloak, cloud STSs.
const ProtocolTokenExchange = "token-exchange"

// Token types of RFC 8693 section 3.
const (
	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
	TokenTypeIDToken     = "urn:ietf:params:oauth:token-type:id_token"
	TokenTypeJWT         = "urn:ietf:params:oauth:token-type:jwt"
)

const grantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"

// Exchange holds the token-exchange settings of a Config.
type Exchange struct {
	// Audience is the audience asked for; empty means the target.
	Audience string
	// ClientID and ClientSecretFile authenticate brokercred as an OAuth
	// client, by HTTP Basic. The secret file is read on every request; no
	// file means a public client, named in the form instead.
	ClientID, ClientSecretFile string
	// ConnectorID selects the Dex connector that verifies the subject token.
	ConnectorID string
	// Scopes are sent space-separated as scope.
	Scopes []string
	// RequestedTokenType and SubjectTokenType default to an access token
	// and an ID token (a ServiceAccount token is an OIDC ID token in shape).
	RequestedTokenType, SubjectTokenType string
}

// exchangeForm is the RFC 8693 request body for target.
func (e Exchange) exchangeForm(target, subjectToken string, withClientID bool) url.Values {
	form := url.Values{
		"grant_type":           {grantTokenExchange},
		"subject_token":        {subjectToken},
		"subject_token_type":   {orDefault(e.SubjectTokenType, TokenTypeIDToken)},
		"requested_token_type": {orDefault(e.RequestedTokenType, TokenTypeAccessToken)},
		"audience":             {orDefault(e.Audience, target)},
	}
	if e.ConnectorID != "" {
		form.Set("connector_id", e.ConnectorID)
	}
	if len(e.Scopes) > 0 {
		form.Set("scope", strings.Join(e.Scopes, " "))
	}
	if withClientID && e.ClientID != "" {
		form.Set("client_id", e.ClientID)
	}
	return form
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// clientSecret reads the client secret fresh, so a rotated Secret volume
// takes effect on the next call.
func (e Exchange) clientSecret() (string, error) {
	if e.ClientSecretFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(e.ClientSecretFile)
	if err != nil {
		return "", fmt.Errorf("read client secret %s: %v; set --client-secret-file to a readable file", e.ClientSecretFile, errors.Unwrap(err))
	}
	secret := strings.TrimSpace(string(b))
	if secret == "" {
		return "", fmt.Errorf("client secret %s is empty; check the Secret mounted there", e.ClientSecretFile)
	}
	return secret, nil
}

// exchange performs one RFC 8693 token exchange for target.
func (c *Client) exchange(ctx context.Context, target, subjectToken string) (Token, error) {
	secret, err := c.cfg.Exchange.clientSecret()
	if err != nil {
		return Token{}, err
	}
	form := c.cfg.Exchange.exchangeForm(target, subjectToken, secret == "")
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, c.url.String(), []byte(form.Encode()))
	if err != nil {
		return Token{}, fmt.Errorf("build token exchange request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "brokercred")
	if secret != "" {
		// RFC 6749 section 2.3.1: both parts form-encoded before Basic.
		req.SetBasicAuth(url.QueryEscape(c.cfg.Exchange.ClientID), url.QueryEscape(secret))
	}
	start := time.Now()
	resp, body, err := c.roundTrip(ctx, req)
	if err != nil {
		return Token{}, err
	}
	if resp.StatusCode/100 != 2 {
		if oerr, ok := parseOAuthError(body); ok {
			if echoes(oerr.Description, subjectToken) {
				oerr.Description = "" // a broker that quotes the pod token back must not make us print it
			}
			return Token{}, oerr.explain(c.url.Host, c.cfg.Exchange, target)
		}
		return Token{}, statusError(resp, c.url.Host, target, subjectToken)
	}
	return parseExchangeAnswer(body, c.url.Host, start)
}

// exchangeAnswer is the RFC 8693 section 2.2.1 response.
type exchangeAnswer struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int64  `json:"expires_in"`
}

func parseExchangeAnswer(body []byte, host string, sent time.Time) (Token, error) {
	var a exchangeAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return Token{}, fmt.Errorf("broker %s answered the token exchange with malformed JSON (%s); check --broker-url is the token endpoint", host, jsonProblem(err))
	}
	if a.AccessToken == "" {
		return Token{}, fmt.Errorf("broker %s answered the token exchange without access_token; check --broker-url is the token endpoint", host)
	}
	t := Token{Value: a.AccessToken}
	if a.ExpiresIn > 0 {
		// Counted from when the request was sent: never later than the broker meant.
		t.Expiry, t.ExpirySource = sent.Add(time.Duration(a.ExpiresIn)*time.Second), "expires_in"
		return t, nil
	}
	return withJWTExpiry(t), nil
}

// oauthError is an RFC 6749 section 5.2 error answer. Its fields are meant
// for the client's developer and carry no secrets.
type oauthError struct {
	Code        string `json:"error"`
	Description string `json:"error_description"`
}

func parseOAuthError(body []byte) (oauthError, bool) {
	var e oauthError
	if json.Unmarshal(body, &e) != nil || e.Code == "" || !isTokenText([]byte(e.Code)) || len(e.Code) > 64 {
		return oauthError{}, false
	}
	return e, true
}

// explain turns the error into one line: the broker's own words, then what
// to check.
func (e oauthError) explain(host string, x Exchange, target string) error {
	return fmt.Errorf("broker %s refused the token exchange: %s; %s", host, e.quoted(), e.hint(x, target))
}

// echoes reports whether text holds any 8-character piece of token.
func echoes(text, token string) bool {
	for i := 0; i+8 <= len(token); i++ {
		if strings.Contains(text, token[i:i+8]) {
			return true
		}
	}
	return false
}

func (e oauthError) quoted() string {
	desc := strings.Join(strings.Fields(e.Description), " ")
	if len(desc) > 200 {
		desc = desc[:200] + "…"
	}
	if desc == "" {
		return e.Code
	}
	return fmt.Sprintf("%s (%q)", e.Code, desc)
}

func (e oauthError) hint(x Exchange, target string) string {
	switch e.Code {
	case "invalid_client", "unauthorized_client":
		return fmt.Sprintf("check --client-id %q and --client-secret-file, and that the client may use the token-exchange grant", x.ClientID)
	case "invalid_grant", "access_denied": // Dex answers access_denied
		return "the broker did not accept the pod token: check its connector (--connector-id) trusts the cluster's ServiceAccount issuer and the pod token's audience"
	case "invalid_target":
		return fmt.Sprintf("the broker will not issue a token for audience %q; check --audience or --target", orDefault(x.Audience, target))
	case "invalid_scope":
		return "check --scope"
	case "unsupported_grant_type":
		return "the broker does not offer token exchange here; enable the grant or check --broker-url is its token endpoint"
	}
	return "check --broker-url, --connector-id, --subject-token-type and the broker's logs"
}
