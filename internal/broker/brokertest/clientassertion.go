package brokertest

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ClientAssertionPath is where the fake broker serves the OAuth
// client-credentials grant with the pod token as a JWT client assertion (RFC
// 7523 section 2.2), the way Microsoft Entra's token endpoint does for
// workload identity federation and Keycloak 26.4+ for federated client
// authentication. The client names itself by client_id; the pod token is
// accepted when it is an unexpired JWT whose subject passes Options.Review
// and Options.Allow. The issued token's audience is the resource asked for:
// resource when set, else audience, else the first scope without a trailing
// "/.default" (scope api://dev/.default asks for api://dev). Refusals are
// OAuth error answers; those about the client or its federated credential
// come in Entra's shape, with error_codes.
const ClientAssertionPath = "/oauth2/v2.0/token"

// ClientAssertionURL is the token endpoint:
// https://127.0.0.1:PORT/oauth2/v2.0/token.
func (s *Server) ClientAssertionURL() string { return s.srv.URL + ClientAssertionPath }

const (
	grantClientCredentials = "client_credentials"
	assertionTypeJWT       = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
)

func (s *Server) serveClientAssertion(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.ParseForm() != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "POST a form")
		return
	}
	assertion := r.PostForm.Get("client_assertion")
	claims := claimsOf(assertion)
	req := Request{Target: requestedResource(r.PostForm), Subject: claims.Sub,
		Authorization: len(r.Header.Values("Authorization")) > 0, Form: without(r.PostForm, "client_assertion")}
	if canned, ok := s.record(r, req); ok {
		s.writeCanned(w, r, canned)
		return
	}
	clientID := r.PostForm.Get("client_id")
	switch {
	case r.PostForm.Get("grant_type") != grantClientCredentials:
		writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "only client_credentials is served here")
	case req.Authorization || r.PostForm.Has("client_secret"):
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "more than one client authentication method")
	case r.PostForm.Get("client_assertion_type") != assertionTypeJWT:
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "client_assertion_type must be "+assertionTypeJWT)
	case clientID == "":
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "client_id is required")
	case s.opts.ClientID != "" && clientID != s.opts.ClientID:
		writeEntraError(w, http.StatusBadRequest, "unauthorized_client", 700016,
			fmt.Sprintf("Application with identifier '%s' was not found in the directory.", clientID))
	case claims.Sub == "":
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client", "client_assertion is not a JWT with a subject")
	case claims.Exp == nil || !time.Now().Before(time.Unix(*claims.Exp, 0)):
		writeEntraError(w, http.StatusUnauthorized, "invalid_client", 700024, "Client assertion is not within its valid time range.")
	case !s.reviewed(assertion, claims.Sub):
		writeEntraError(w, http.StatusBadRequest, "invalid_request", 70021,
			fmt.Sprintf("No matching federated identity record found for presented assertion. Assertion Issuer: '%s'. Assertion Subject: '%s'.", claims.Iss, claims.Sub))
	case !s.allowed(claims.Sub):
		writeEntraError(w, http.StatusUnauthorized, "invalid_client", 700213,
			fmt.Sprintf("No matching federated identity record found for presented assertion subject '%s'. Check your federated identity credential Subject, Audience and Issuer against the presented assertion.", claims.Sub))
	case req.Target == "":
		writeOAuthError(w, http.StatusBadRequest, "invalid_scope", "no scope, audience or resource names what the token is for")
	default:
		s.writeGranted(w, req)
	}
}

// requestedResource is what the token is asked for: resource, else
// audience, else the first scope without a trailing "/.default".
func requestedResource(form url.Values) string {
	for _, name := range []string{"resource", "audience"} {
		if v := form.Get(name); v != "" {
			return v
		}
	}
	scopes := strings.Fields(form.Get("scope"))
	if len(scopes) == 0 {
		return ""
	}
	return strings.TrimSuffix(scopes[0], "/.default")
}

// writeGranted answers a client-credentials grant (RFC 6749 section 4.4.3).
func (s *Server) writeGranted(w http.ResponseWriter, req Request) {
	answer := map[string]any{
		"access_token": s.Issue(req.Target, req.Subject, time.Now().Add(s.opts.TTL)),
		"token_type":   "Bearer",
	}
	if !s.opts.NoExp {
		answer["expires_in"] = int(s.opts.TTL / time.Second)
	}
	writeJSON(w, answer)
}

// writeEntraError answers an OAuth error the way Microsoft Entra words it:
// the description opens with AADSTS<code> and ends with trace lines, and
// error_codes lists the code.
func writeEntraError(w http.ResponseWriter, status int, code string, aadsts int, message string) {
	now := time.Now().UTC().Format("2006-01-02 15:04:05Z")
	const id = "00000000-0000-0000-0000-000000000000"
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	writeJSON(w, map[string]any{
		"error":             code,
		"error_description": fmt.Sprintf("AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s", aadsts, message, id, id, now),
		"error_codes":       []int{aadsts},
		"timestamp":         now,
		"trace_id":          id,
		"correlation_id":    id,
		"error_uri":         fmt.Sprintf("https://login.microsoftonline.com/error?code=%d", aadsts),
	})
}
