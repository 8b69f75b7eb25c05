package brokertest

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

const assertionSubject = "system:serviceaccount:argocd:argocd-application-controller"

// TestClientAssertionContract posts forms straight to the fake's
// client-assertion endpoint, each wrong in one field, and checks the answer
// the fake gives: the contract the broker package's tests rely on.
func TestClientAssertionContract(t *testing.T) {
	valid := func() url.Values {
		return url.Values{
			"grant_type":            {"client_credentials"},
			"client_id":             {"app"},
			"client_assertion_type": {assertionTypeJWT},
			"client_assertion":      {PodToken(assertionSubject, time.Now().Add(time.Hour))},
			"scope":                 {"api://dev/.default"},
		}
	}
	expired := PodToken(assertionSubject, time.Now().Add(-time.Second))
	for _, tc := range []struct {
		name       string
		opts       Options
		edit       func(url.Values)
		basicAuth  bool
		wantStatus int
		wantError  string
		wantCodes  []int
	}{
		{name: "valid", wantStatus: 200},
		{name: "resource names the audience", edit: func(v url.Values) { v.Set("resource", "api://dev") }, wantStatus: 200},
		{name: "audience names the audience", edit: func(v url.Values) { v.Del("scope"); v.Set("audience", "api://dev") }, wantStatus: 200},
		{name: "another grant", edit: func(v url.Values) { v.Set("grant_type", "password") }, wantStatus: 400, wantError: "unsupported_grant_type"},
		{name: "a client secret too", edit: func(v url.Values) { v.Set("client_secret", "s") }, wantStatus: 400, wantError: "invalid_request"},
		{name: "HTTP Basic too", basicAuth: true, wantStatus: 400, wantError: "invalid_request"},
		{name: "another assertion type", edit: func(v url.Values) { v.Set("client_assertion_type", "urn:x") }, wantStatus: 400, wantError: "invalid_request"},
		{name: "no client id", edit: func(v url.Values) { v.Del("client_id") }, wantStatus: 400, wantError: "invalid_request"},
		{name: "another client id", opts: Options{ClientID: "other"}, wantStatus: 400, wantError: "unauthorized_client", wantCodes: []int{700016}},
		{name: "an opaque assertion", edit: func(v url.Values) { v.Set("client_assertion", "opaque") }, wantStatus: 401, wantError: "invalid_client"},
		{name: "an expired assertion", edit: func(v url.Values) { v.Set("client_assertion", expired) },
			wantStatus: 401, wantError: "invalid_client", wantCodes: []int{700024}},
		{name: "a subject not allowed", opts: Options{Allow: []string{"nobody"}}, wantStatus: 401, wantError: "invalid_client", wantCodes: []int{700213}},
		{name: "a token the review refuses", opts: Options{Review: func(string) (string, error) { return "", errors.New("no") }},
			wantStatus: 400, wantError: "invalid_request", wantCodes: []int{70021}},
		{name: "nothing names the audience", edit: func(v url.Values) { v.Del("scope") }, wantStatus: 400, wantError: "invalid_scope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewServer(tc.opts)
			defer s.Close()
			form := valid()
			if tc.edit != nil {
				tc.edit(form)
			}
			req, _ := http.NewRequest(http.MethodPost, s.ClientAssertionURL(), strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tc.basicAuth {
				req.SetBasicAuth("app", "secret")
			}
			resp, err := s.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var answer struct {
				AccessToken string `json:"access_token"`
				TokenType   string `json:"token_type"`
				ExpiresIn   int    `json:"expires_in"`
				Error       string `json:"error"`
				ErrorCodes  []int  `json:"error_codes"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
				t.Fatalf("answer is not JSON: %v", err)
			}
			if resp.StatusCode != tc.wantStatus || answer.Error != tc.wantError || !slices.Equal(answer.ErrorCodes, tc.wantCodes) {
				t.Errorf("answer = %d %q %v, want %d %q %v", resp.StatusCode, answer.Error, answer.ErrorCodes, tc.wantStatus, tc.wantError, tc.wantCodes)
			}
			if tc.wantStatus == 200 {
				if err := s.Verify(answer.AccessToken, "api://dev", time.Now()); err != nil || answer.TokenType != "Bearer" || answer.ExpiresIn != 60 {
					t.Errorf("granted %q token for 60s? expires_in %d, verify: %v", answer.TokenType, answer.ExpiresIn, err)
				}
			}
			reqs := s.Requests()
			if len(reqs) != 1 || reqs[0].Form.Has("client_assertion") || reqs[0].Form.Get("client_id") != form.Get("client_id") {
				t.Errorf("recorded %d requests, the first %v; want one, without the assertion", len(reqs), reqs)
			}
		})
	}
}
