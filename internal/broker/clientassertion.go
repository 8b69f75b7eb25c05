package broker

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// ClientAssertionTypeJWT is the client_assertion_type of RFC 7523 section
// 2.2: the client authenticates with a JWT.
const ClientAssertionTypeJWT = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

const grantClientCredentials = "client_credentials"

// ClientAssertion is the OAuth client-credentials grant with the pod token as
// the client's credential (RFC 7523 section 2.2), as Microsoft Entra
// workload identity federation and Keycloak 26.4+ federated client
// authentication take it. The client is the shared OAuthClient's
// --client-id, which it requires; it has no client secret. What the token is
// for is named by --scope, and by --audience and --resource when they are
// set, each with {target} replaced by the target. The zero Resource sends
// no resource.
type ClientAssertion struct {
	Resource string `name:"resource" env:"BROKERCRED_RESOURCE" placeholder:"URI" help:"Resource to ask for, sent only when set (Entra v1 endpoint, ADFS); {target} is replaced by the target."`

	oauth OAuthClient `kong:"-"` // the shared OAuth flags, set by Choose
}

// endpointHint says where the token endpoints of Entra and Keycloak live.
func (ClientAssertion) endpointHint() string {
	return "check --broker-url is the token endpoint (Entra: https://login.microsoftonline.com/TENANT/oauth2/v2.0/token, Keycloak: https://HOST/realms/REALM/protocol/openid-connect/token)"
}

// fetch asks for a token for call.Target with the client-credentials grant,
// the pod token as the client assertion.
func (a ClientAssertion) fetch(ctx context.Context, c *Client, call Call) (Token, error) {
	if err := a.check(call.PodToken); err != nil {
		return Token{}, err
	}
	refuse := func(e oauthError) error { return a.refusal(c.Host(), e, call) }
	return c.postForm(ctx, call, a.form(call), "", "", "client credentials grant", a.endpointHint(), refuse)
}

// check refuses, before anything is sent, a configuration this grant cannot
// use: no client id, a client secret besides the assertion, or a pod token
// that is no JWT.
func (a ClientAssertion) check(podToken string) error {
	oc := a.oauth
	if oc.ClientSecretFile != "" {
		return errors.New("--protocol client-assertion authenticates with the pod token, not a client secret; remove --client-secret-file (BROKERCRED_CLIENT_SECRET_FILE)")
	}
	if oc.ClientID == "" {
		return errors.New("--protocol client-assertion needs --client-id; set it to the client the federated credential is on (Entra: the application or managed identity's client id, Keycloak: the client's id)")
	}
	if _, err := ParseClaims(podToken); err != nil {
		return errors.New("the pod token is not a JWT, which a client assertion must be (RFC 7523); set --token-file to a projected ServiceAccount token")
	}
	return nil
}

// form is the request body for call: RFC 6749 section 4.4.2's
// client-credentials grant, authenticated by RFC 7523 section 2.2.
func (a ClientAssertion) form(call Call) url.Values {
	oc := a.oauth
	form := url.Values{
		"grant_type":            {grantClientCredentials},
		"client_id":             {oc.ClientID},
		"client_assertion_type": {ClientAssertionTypeJWT},
		"client_assertion":      {call.PodToken},
	}
	for name, value := range map[string]string{
		"scope":    oc.scope(call.Target),
		"audience": withTarget(oc.Audience, call.Target),
		"resource": withTarget(a.Resource, call.Target),
	} {
		if value != "" {
			form.Set(name, value)
		}
	}
	return form
}

// withTarget is s with {target} replaced by target.
func withTarget(s, target string) string {
	return strings.ReplaceAll(s, "{target}", target)
}

// refusal explains an OAuth error answer in one line: the broker's words,
// Entra's first error code as AADSTS<n>, and what to check for this grant.
func (a ClientAssertion) refusal(host string, e oauthError, call Call) error {
	words := e.quoted()
	if len(e.ErrorCodes) > 0 {
		words = fmt.Sprintf("AADSTS%d %s", e.ErrorCodes[0], words)
	}
	return fmt.Errorf("broker %s refused the client assertion: %s; %s", host, words, a.hint(e, call))
}

// hint is what to check for an OAuth error: by Entra's error code when it is
// a common one, else by the OAuth error code.
func (a ClientAssertion) hint(e oauthError, call Call) string {
	oc := a.oauth
	pod, _ := ParseClaims(call.PodToken)
	if len(e.ErrorCodes) > 0 {
		switch e.ErrorCodes[0] {
		case 70021:
			return fmt.Sprintf("no federated identity credential on client %q matches the pod token (%s): add one with exactly this issuer, subject and audience", oc.ClientID, describeAssertion(pod))
		case 700211:
			return fmt.Sprintf("no federated identity credential on client %q trusts issuer %q: set the credential's issuer to the control-plane cluster's OIDC issuer URL, exactly the pod token's iss", oc.ClientID, pod.Issuer)
		case 700213:
			return fmt.Sprintf("no federated identity credential on client %q has subject %q: set the credential's subject to exactly that (system:serviceaccount:NAMESPACE:NAME)", oc.ClientID, pod.Subject)
		case 700024:
			return fmt.Sprintf("the pod token (%s, exp %s) is expired, not yet valid or not for this audience: check the node's clock and that the projected token's audience is the credential's (Entra: api://AzureADTokenExchange)", describeAssertion(pod), describeExp(pod.Expiry))
		case 700016:
			return fmt.Sprintf("the tenant has no application with client id %q: check --client-id and the tenant in --broker-url", oc.ClientID)
		}
	}
	switch e.Code {
	case "invalid_client", "unauthorized_client":
		return fmt.Sprintf("check the federated credential of client %q matches the pod token (%s) and that the client may use the client-credentials grant (Keycloak: service accounts enabled)", oc.ClientID, describeAssertion(pod))
	case "invalid_scope":
		const example = "(Entra: RESOURCE/.default, for AKS 6dae42f8-4368-4678-94ff-3960e28e3630/.default)"
		if scope := oc.scope(call.Target); scope != "" {
			return fmt.Sprintf("the broker will not grant scope %q: check --scope %s", scope, example)
		}
		return "no scope was sent: set --scope " + example
	case "invalid_target":
		return fmt.Sprintf("the broker will not issue a token for resource %q, audience %q: check --resource and --audience", withTarget(a.Resource, call.Target), withTarget(oc.Audience, call.Target))
	case "unsupported_grant_type":
		return "the broker does not offer the client-credentials grant here: enable it for the client, or check --broker-url is its token endpoint"
	}
	return "check --broker-url, --client-id, --scope and the broker's logs"
}

// describeAssertion names the pod token's iss, sub and aud, which a
// federated credential must match: claims, never the token.
func describeAssertion(c Claims) string {
	return fmt.Sprintf("iss %q, sub %q, aud %q", c.Issuer, c.Subject, strings.Join(c.Audience, ","))
}

func describeExp(exp time.Time) string {
	if exp.IsZero() {
		return "none"
	}
	return exp.UTC().Format(time.RFC3339)
}
