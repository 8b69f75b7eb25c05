package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// GetTargetToken is OpenUnison's get-target-token API: GET
// <url>?targetName=<target> with the pod token as a Bearer credential; the
// answer is the token as plain text, as JSON, or as a whole ExecCredential.
// It has no settings of its own.
type GetTargetToken struct{}

// endpointHint says where OpenUnison serves the API.
func (GetTargetToken) endpointHint() string {
	return "check --broker-url (OpenUnison: https://HOST/api/get-target-token)"
}

// fetch asks for a token for call.Target.
func (g GetTargetToken) fetch(ctx context.Context, c *Client, call Call) (Token, error) {
	req, err := c.newRequest(ctx, http.MethodGet, "", nil)
	if err != nil {
		return Token{}, err
	}
	q := req.URL.Query()
	q.Set("targetName", call.Target)
	req.URL.RawQuery = q.Encode()
	req.Header.Set("Authorization", "Bearer "+call.PodToken)
	req.Header.Set("Accept", "application/json, text/plain")
	resp, body, err := c.roundTrip(ctx, req)
	if err != nil {
		return Token{}, err
	}
	if resp.StatusCode/100 != 2 {
		return Token{}, c.statusError(resp, call, g.endpointHint())
	}
	return parseAnswer(body, resp.Header.Get("Content-Type"), c.Host())
}

// answer covers the two JSON shapes brokers give: {"token", "expirationTimestamp"}
// and a whole ExecCredential, whose fields sit under "status".
type answer struct {
	Kind                string     `json:"kind"`
	Token               string     `json:"token"`
	ExpirationTimestamp *time.Time `json:"expirationTimestamp"`
	Status              *struct {
		Token               string     `json:"token"`
		ExpirationTimestamp *time.Time `json:"expirationTimestamp"`
	} `json:"status"`
}

// parseAnswer reads a 2xx broker answer: a raw token as text, JSON with a
// token, or an ExecCredential. Errors describe the body, never quote it.
func parseAnswer(body []byte, contentType, host string) (Token, error) {
	body = bytes.TrimSpace(body)
	switch {
	case len(body) == 0:
		return Token{}, fmt.Errorf("broker %s answered with an empty body; check the broker's logs for this target", host)
	case body[0] == '<' || strings.HasPrefix(contentType, "text/html"):
		return Token{}, fmt.Errorf("broker %s answered with an HTML page, not a token; check --broker-url points at the token API, not a login page", host)
	case body[0] == '{':
		return parseJSONAnswer(body, host)
	}
	if !isTokenText(body) {
		return Token{}, fmt.Errorf("broker %s answered with text that is not a token; check --broker-url and --protocol", host)
	}
	return Token{Value: string(body)}, nil
}

func parseJSONAnswer(body []byte, host string) (Token, error) {
	var a answer
	if err := json.Unmarshal(body, &a); err != nil {
		return Token{}, fmt.Errorf("broker %s answered with malformed JSON (%s); check --protocol matches the broker", host, jsonProblem(err))
	}
	t := Token{Value: a.Token}
	exp := a.ExpirationTimestamp
	if a.Status != nil && (a.Kind == "ExecCredential" || t.Value == "") {
		t.Value, exp = a.Status.Token, a.Status.ExpirationTimestamp
	}
	if t.Value == "" || !isTokenText([]byte(t.Value)) {
		return Token{}, fmt.Errorf("broker %s answered with JSON that holds no token; check --protocol matches the broker", host)
	}
	if exp != nil && !exp.IsZero() {
		t.Expiry, t.ExpirySource = *exp, "answer"
	}
	return t, nil
}

// jsonProblem names what is wrong with JSON without quoting any of it.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("syntax error at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %q has the wrong type", typ.Field)
	}
	return "unreadable"
}

// isTokenText reports whether b looks like one bearer token: printable
// ASCII, no spaces.
func isTokenText(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}
