package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// OAuthClient is the OAuth client brokercred acts as at a token endpoint,
// shared by the token-exchange and client-assertion protocols. The zero value
// is a client without id or secret asking for no scope and no audience.
type OAuthClient struct {
	ClientID         string   `name:"client-id" env:"BROKERCRED_CLIENT_ID" placeholder:"ID" help:"OAuth client brokercred authenticates as (token-exchange; required by client-assertion)."`
	ClientSecretFile string   `name:"client-secret-file" env:"BROKERCRED_CLIENT_SECRET_FILE" placeholder:"FILE" help:"File holding the client secret, read on every call (token-exchange; omit for a public client; refused by client-assertion)."`
	Scopes           []string `name:"scope" env:"BROKERCRED_SCOPE" placeholder:"SCOPE" help:"Scope to ask for (repeatable); {target} is replaced by the target."`
	Audience         string   `name:"audience" env:"BROKERCRED_AUDIENCE" placeholder:"AUD" help:"Audience to ask for; {target} is replaced by the target (token-exchange default: the target; client-assertion: sent only when set)."`
}

// postForm sends form to the token endpoint at c, by HTTP Basic as user
// and password when user is set (RFC 6749 section 2.3.1: both form-encoded
// first), and reads the answer: the token (grant names the grant for
// messages), or an error that refuse words for an OAuth error answer and
// the status words for anything else, hint saying where the endpoint lives.
func (c *Client) postForm(ctx context.Context, call Call, form url.Values, user, password, grant, hint string, refuse func(oauthError) error) (Token, error) {
	req, err := c.newRequest(ctx, http.MethodPost, "", []byte(form.Encode()))
	if err != nil {
		return Token{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(password))
	}
	sent := time.Now()
	resp, body, err := c.roundTrip(ctx, req)
	if err != nil {
		return Token{}, err
	}
	if resp.StatusCode/100 != 2 {
		if oerr, ok := parseOAuthError(body, call.PodToken); ok {
			return Token{}, refuse(oerr)
		}
		return Token{}, c.statusError(resp, call, hint)
	}
	return parseOAuthAnswer(body, c.Host(), grant, sent)
}

// scope is the space-joined scopes, {target} replaced by target.
func (o OAuthClient) scope(target string) string {
	return strings.ReplaceAll(strings.Join(o.Scopes, " "), "{target}", target)
}

// clientSecret reads the client secret fresh, so a rotated Secret volume
// takes effect on the next call, and adds it to call's secrets. No file
// gives "".
func (o OAuthClient) clientSecret(call Call) (string, error) {
	if o.ClientSecretFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(o.ClientSecretFile)
	if err != nil {
		return "", fmt.Errorf("read client secret %s: %v; set --client-secret-file to a readable file", o.ClientSecretFile, errors.Unwrap(err))
	}
	secret := strings.TrimSpace(string(b))
	if secret == "" {
		return "", fmt.Errorf("client secret %s is empty; check the Secret mounted there", o.ClientSecretFile)
	}
	call.Secrets.Add(secret)
	return secret, nil
}

// oauthAnswer is a token endpoint's success answer (RFC 6749 section 5.1,
// RFC 8693 section 2.2.1).
type oauthAnswer struct {
	AccessToken     string  `json:"access_token"`
	IssuedTokenType string  `json:"issued_token_type"`
	TokenType       string  `json:"token_type"`
	ExpiresIn       seconds `json:"expires_in"`
}

// seconds is expires_in: a JSON number, or a string holding one, as
// Microsoft Entra's v1 endpoint writes it ("3599").
type seconds int64

// maxSeconds is the longest expires_in a time.Duration holds; a longer one
// is read as this (--max-ttl caps it far lower anyway).
const maxSeconds = math.MaxInt64 / int64(time.Second)

func (s *seconds) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	text := string(b)
	if len(b) > 0 && b[0] == '"' && json.Unmarshal(b, &text) != nil {
		text = ""
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return &json.UnmarshalTypeError{Value: "non-integer", Type: reflect.TypeFor[int64]()}
	}
	*s = seconds(min(n, maxSeconds))
	return nil
}

// parseOAuthAnswer reads a token endpoint's 2xx answer; grant names the
// grant for messages. expires_in counts from sent, the moment the request
// left: never later than the broker meant.
func parseOAuthAnswer(body []byte, host, grant string, sent time.Time) (Token, error) {
	var a oauthAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return Token{}, fmt.Errorf("broker %s answered the %s with malformed JSON (%s); check --broker-url is the token endpoint", host, grant, jsonProblem(err))
	}
	if a.AccessToken == "" || !isTokenText([]byte(a.AccessToken)) {
		return Token{}, fmt.Errorf("broker %s answered the %s without a usable access_token; check --broker-url is the token endpoint", host, grant)
	}
	t := Token{Value: a.AccessToken}
	if a.ExpiresIn > 0 {
		t.Expiry, t.ExpirySource = sent.Add(time.Duration(a.ExpiresIn)*time.Second), "expires_in"
	}
	return t, nil
}

// oauthError is an RFC 6749 section 5.2 error answer.
type oauthError struct {
	Code        string `json:"error"`
	Description string `json:"error_description"`
	ErrorCodes  []int  `json:"error_codes"` // Microsoft Entra's AADSTS numbers
}

// parseOAuthError reads an error answer; ok is false for anything else. A
// field that holds a piece of the pod token is dropped: a broker that quotes
// its input back must not make brokercred print it.
func parseOAuthError(body []byte, podToken string) (oauthError, bool) {
	var e oauthError
	if json.Unmarshal(body, &e) != nil || e.Code == "" || !isTokenText([]byte(e.Code)) || len(e.Code) > 64 || echoes(e.Code, podToken) {
		return oauthError{}, false
	}
	if echoes(e.Description, podToken) {
		e.Description = ""
	}
	return e, true
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

// quoted is the broker's own words, shortened and quoted.
func (e oauthError) quoted() string {
	desc := strings.Join(strings.Fields(e.Description), " ")
	if len(desc) > 200 {
		desc = desc[:200] + "…"
	}
	if desc == "" {
		return fmt.Sprintf("%q", e.Code)
	}
	return fmt.Sprintf("%q (%q)", e.Code, desc)
}
