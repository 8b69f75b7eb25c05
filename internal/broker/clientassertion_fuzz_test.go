package broker

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/brokercred/brokercred/internal/broker/brokertest"
)

// FuzzClientAssertionAnswer feeds arbitrary bodies to the client-assertion
// protocol's answer and error handling, with a pod token whose subject is
// fuzzed too: no panic; refusals of a 2xx answer in fixed sentences; an
// accepted token printable ASCII with an expiry after sending; and an error
// answer explained in one line that starts as the protocol words it, holds
// no piece of the pod token's signature, and has a cause and a fix.
func FuzzClientAssertionAnswer(f *testing.F) {
	f.Add([]byte(`{"access_token":"tok","token_type":"Bearer","expires_in":86399}`), subjectSeed)
	f.Add([]byte(`{"access_token":"tok","token_type":"Bearer","expires_in":"3599"}`), subjectSeed)
	f.Add([]byte(`{"error":"invalid_request","error_description":"AADSTS70021: No matching federated identity record found for presented assertion.\r\nTrace ID: x","error_codes":[70021]}`), subjectSeed)
	f.Add([]byte(`{"error":"invalid_client","error_description":"AADSTS700024: Client assertion is not within its valid time range.","error_codes":[700024,50000]}`), "sub\nwith a newline")
	f.Add([]byte(`{"error":"invalid_client","error_description":"bad POD"}`), subjectSeed)
	f.Add([]byte(`{"error":"invalid_scope","error_codes":[]}`), "")
	sent := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	errRE := oauthErrRE("client credentials grant")
	a := ClientAssertion{Resource: "https://{target}.example", oauth: OAuthClient{ClientID: "app", Scopes: []string{"api://{target}/.default"}}}
	f.Fuzz(func(t *testing.T, body []byte, sub string) {
		pod := fuzzPodToken(sub)
		body = []byte(strings.ReplaceAll(string(body), "POD", pod))
		checkOAuthAnswer(t, body, "client credentials grant", sent, errRE)
		e, ok := parseOAuthError(body, pod)
		if !ok {
			return
		}
		msg := a.refusal("broker.test", e, Call{Target: "dev", PodToken: pod}).Error()
		if strings.ContainsAny(msg, "\r\n") {
			t.Fatalf("the refusal spans lines: %q", msg)
		}
		if !strings.HasPrefix(msg, "broker broker.test refused the client assertion: ") || !strings.Contains(msg, "; ") {
			t.Fatalf("the refusal is not a cause and a fix: %q", msg)
		}
		// The claims are printed by design: a subject that holds a piece of
		// the signature is no leak of the refusal's making.
		if leak := brokertest.Leak(msg, pod); leak != "" && brokertest.Leak(sub, pod) == "" {
			t.Fatalf("the refusal holds %s of the pod token", leak)
		}
	})
}

const subjectSeed = "system:serviceaccount:argocd:argocd-application-controller"

// fuzzPodToken is a JWT for sub with a fixed signature; its claims may be
// printed, its signature never.
func fuzzPodToken(sub string) string {
	b64 := base64.RawURLEncoding.EncodeToString
	claims, _ := json.Marshal(map[string]any{"iss": "https://kubernetes.default.svc.cluster.local", "sub": sub, "aud": []string{"api://AzureADTokenExchange"}, "exp": 1893456000})
	return b64([]byte(`{"alg":"ES256","typ":"JWT"}`)) + "." + b64(claims) + "." + b64([]byte("a signature that is secret, 64 bytes long, like an ES256 one...."))
}
