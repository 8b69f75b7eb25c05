package brokertest

import (
	"net/http"
	"net/url"
	"time"
)

// ExchangePath is where the fake broker serves OAuth 2.0 Token Exchange
// (RFC 8693), the way Dex does at its token endpoint: the pod token is the
// subject_token, the audience names the target, the client authenticates by
// HTTP Basic (or names itself, when public), and refusals are OAuth error
// answers.
const ExchangePath = "/token"

// ExchangeURL is the token endpoint: https://127.0.0.1:PORT/token.
func (s *Server) ExchangeURL() string { return s.srv.URL + ExchangePath }

const grantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"

var subjectTokenTypes = map[string]bool{
	"urn:ietf:params:oauth:token-type:id_token":     true,
	"urn:ietf:params:oauth:token-type:jwt":          true,
	"urn:ietf:params:oauth:token-type:access_token": true,
}

func (s *Server) serveExchange(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.ParseForm() != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "POST a form")
		return
	}
	form := without(r.PostForm, "subject_token")
	subjectToken := r.PostForm.Get("subject_token")
	req := Request{Target: r.PostForm.Get("audience"), Subject: subjectOf(subjectToken),
		Authorization: len(r.Header.Values("Authorization")) > 0, Form: form}
	if canned, ok := s.record(r, req); ok {
		s.writeCanned(w, r, canned)
		return
	}
	switch {
	case r.PostForm.Get("grant_type") != grantTokenExchange:
		writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "only token exchange is served here")
	case !s.clientAuthenticated(r):
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client", "Invalid client credentials.")
	case !subjectTokenTypes[r.PostForm.Get("subject_token_type")]:
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "unsupported subject_token_type")
	case req.Subject == "" || !s.reviewed(subjectToken, req.Subject) || !s.allowed(req.Subject):
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "subject token is not accepted")
	case req.Target == "":
		writeOAuthError(w, http.StatusBadRequest, "invalid_target", "no audience")
	default:
		s.writeExchanged(w, req, r.PostForm.Get("requested_token_type"))
	}
}

func (s *Server) clientAuthenticated(r *http.Request) bool {
	if s.opts.ClientSecret != "" {
		id, secret, ok := r.BasicAuth()
		id, idErr := url.QueryUnescape(id)
		secret, secretErr := url.QueryUnescape(secret)
		return ok && idErr == nil && secretErr == nil && id == s.opts.ClientID && secret == s.opts.ClientSecret
	}
	return s.opts.ClientID == "" || r.PostForm.Get("client_id") == s.opts.ClientID
}

func (s *Server) writeExchanged(w http.ResponseWriter, req Request, requested string) {
	if requested == "" {
		requested = "urn:ietf:params:oauth:token-type:access_token"
	}
	answer := map[string]any{
		"access_token":      s.Issue(req.Target, req.Subject, time.Now().Add(s.opts.TTL)),
		"issued_token_type": requested,
		"token_type":        "Bearer",
	}
	if !s.opts.NoExp {
		answer["expires_in"] = int(s.opts.TTL / time.Second)
	}
	writeJSON(w, answer)
}

func writeOAuthError(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	writeJSON(w, map[string]string{"error": code, "error_description": description})
}

// without is a copy of form without the field named secret, for the record
// of a request: a test may print it.
func without(form url.Values, secret string) url.Values {
	kept := url.Values{}
	for k, v := range form {
		if k != secret {
			kept[k] = v
		}
	}
	return kept
}
