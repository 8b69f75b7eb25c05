package brokertest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"
)

// VaultPrefix is where the fake broker serves HashiCorp Vault's HTTP API, the
// part brokercred uses (OpenBao's is the same): login at a kubernetes or jwt
// auth method, identity tokens, revoke-self, and sys/health. VaultURL is the
// Vault address.
//
//	POST /v1/auth/MOUNT/login {"role", "jwt"} -> {"auth": {"client_token", "lease_duration", …}}
//	GET  /v1/identity/oidc/token/ROLE (X-Vault-Token) -> {"data": {"token", "client_id", "ttl"}}
//	POST /v1/auth/token/revoke-self (X-Vault-Token) -> 204
//
// Errors are Vault's: a 4xx or 5xx status with {"errors": ["…"]}.
const VaultPrefix = "/v1/"

// VaultURL is the fake Vault's address, https://127.0.0.1:PORT, for
// --broker-url. Its identity tokens' iss is VaultURL + "/v1/identity/oidc".
func (s *Server) VaultURL() string { return s.srv.URL }

// VaultOptions configure the fake Vault. The zero value has one auth method at
// "kubernetes" that accepts any login role for any pod token that passes the
// Server's Review and Allow rules, and an identity role for every name, with
// the name as its client_id (so the role named like a target issues tokens
// that target's API stub accepts) and Options.TTL as its ttl.
type VaultOptions struct {
	// Mount is where the auth method is enabled; empty means "kubernetes".
	Mount string
	// LoginRole is the auth method's only role; empty accepts any.
	LoginRole string
	// Roles are the identity token roles by name; nil means every name.
	Roles map[string]VaultRole
	// Denied lists the identity roles the login role's policy may not read.
	Denied []string
	// Namespace is the X-Vault-Namespace every request must carry; empty
	// means none may.
	Namespace string
	// Lease is the Vault token's lease_duration; zero means 768h, Vault's
	// default.
	Lease time.Duration
	// RevokeStatus, when set, makes revoke-self fail with this status and
	// leave the Vault token valid.
	RevokeStatus int
}

// VaultRole is one identity token role.
type VaultRole struct {
	ClientID string        // aud of its tokens; empty means the role's name
	TTL      time.Duration // lifetime of its tokens; zero means Options.TTL
}

// VaultRequest is what one Vault API request carried.
type VaultRequest struct {
	Step   string // "login", "token" or "revoke"
	Method string
	// Mount is the auth mount of a login's path.
	Mount string
	// Role is a login's role (from the body), or the identity role of a
	// token request (from the path).
	Role string
	// Fields are the names of a login body's fields, sorted.
	Fields []string
	// Namespace is the X-Vault-Namespace header; "" when absent.
	Namespace string
	// VaultToken says what X-Vault-Token held: "issued" (a token this
	// Vault issued and has not revoked), "revoked", "unknown" or "" (none).
	VaultToken string
}

// vaultSession is one Vault token the fake issued.
type vaultSession struct {
	subject string
	revoked bool
}

// VaultTokens returns every Vault token (client_token) the fake issued so
// far, so a test can check none of them leaked.
func (s *Server) VaultTokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	tokens := make([]string, 0, len(s.vault))
	for t := range s.vault {
		tokens = append(tokens, t)
	}
	sort.Strings(tokens)
	return tokens
}

func (s *Server) serveVault(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, VaultPrefix)
	switch {
	case path == "sys/health":
		writeJSON(w, map[string]any{"initialized": true, "sealed": false, "standby": false, "version": "brokertest"})
	case path == "auth/token/revoke-self":
		s.vaultRevoke(w, r)
	case strings.HasPrefix(path, "identity/oidc/token/"):
		s.vaultToken(w, r, strings.TrimPrefix(path, "identity/oidc/token/"))
	case strings.HasPrefix(path, "auth/") && strings.HasSuffix(path, "/login"):
		s.vaultLogin(w, r, strings.TrimSuffix(strings.TrimPrefix(path, "auth/"), "/login"))
	default:
		writeVaultError(w, http.StatusNotFound, fmt.Sprintf("no handler for route %q. route entry not found.", path))
	}
}

func (s *Server) vaultLogin(w http.ResponseWriter, r *http.Request, mount string) {
	var body map[string]any
	_ = json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body)
	role, _ := body["role"].(string)
	jwt, _ := body["jwt"].(string)
	fields := make([]string, 0, len(body))
	for k := range body {
		fields = append(fields, k)
	}
	sort.Strings(fields)
	vr := &VaultRequest{Step: "login", Method: r.Method, Mount: mount, Role: role, Fields: fields, Namespace: r.Header.Get("X-Vault-Namespace")}
	req := Request{Subject: subjectOf(jwt), Vault: vr}
	if canned, ok := s.record(r, req); ok {
		s.writeCanned(w, r, canned)
		return
	}
	o := s.opts.Vault
	switch {
	case vr.Namespace != o.Namespace || mount != orDefault(o.Mount, "kubernetes"):
		writeVaultError(w, http.StatusNotFound, fmt.Sprintf("no handler for route %q. route entry not found.", "auth/"+mount+"/login"))
	case r.Method != http.MethodPost && r.Method != http.MethodPut:
		writeVaultError(w, http.StatusMethodNotAllowed, "unsupported operation")
	case role == "":
		writeVaultError(w, http.StatusBadRequest, "missing role")
	case jwt == "":
		writeVaultError(w, http.StatusBadRequest, "missing jwt")
	case o.LoginRole != "" && role != o.LoginRole:
		writeVaultError(w, http.StatusBadRequest, fmt.Sprintf("invalid role name %q", role))
	case req.Subject == "" || !s.reviewed(jwt, req.Subject) || !s.allowed(req.Subject):
		writeVaultError(w, http.StatusForbidden, "permission denied")
	default:
		s.writeVaultLogin(w, role, req.Subject)
	}
}

func (s *Server) writeVaultLogin(w http.ResponseWriter, role, subject string) {
	token := "hvs." + randomString(24)
	s.mu.Lock()
	if s.vault == nil {
		s.vault = map[string]*vaultSession{}
	}
	s.vault[token] = &vaultSession{subject: subject}
	s.mu.Unlock()
	lease := s.opts.Vault.Lease
	if lease == 0 {
		lease = 768 * time.Hour
	}
	namespace, name, _ := strings.Cut(strings.TrimPrefix(subject, "system:serviceaccount:"), ":")
	writeJSON(w, map[string]any{
		"request_id": randomString(8), "lease_id": "", "renewable": false, "lease_duration": 0,
		"data": nil, "wrap_info": nil, "warnings": nil,
		"auth": map[string]any{
			"client_token": token, "accessor": randomString(12),
			"policies": []string{"default", role}, "token_policies": []string{"default", role},
			"metadata":       map[string]string{"role": role, "service_account_name": name, "service_account_namespace": namespace},
			"lease_duration": int(lease / time.Second), "renewable": true,
			"entity_id": entityID(subject), "token_type": "service", "orphan": true,
		},
	})
}

func (s *Server) vaultToken(w http.ResponseWriter, r *http.Request, role string) {
	session, state := s.vaultSession(r)
	vr := &VaultRequest{Step: "token", Method: r.Method, Role: role, Namespace: r.Header.Get("X-Vault-Namespace"), VaultToken: state}
	req := Request{Target: role, Subject: session.subject, Vault: vr}
	if canned, ok := s.record(r, req); ok {
		s.writeCanned(w, r, canned)
		return
	}
	o := s.opts.Vault
	spec, known := o.Roles[role]
	switch {
	case r.Method != http.MethodGet:
		writeVaultError(w, http.StatusMethodNotAllowed, "unsupported operation")
	case state != "issued" || vr.Namespace != o.Namespace || slices.Contains(o.Denied, role):
		// Vault words an ACL refusal as a multierror, over several lines.
		writeVaultError(w, http.StatusForbidden, "1 error occurred:\n\t* permission denied\n\n")
	case o.Roles != nil && !known:
		writeVaultError(w, http.StatusBadRequest, fmt.Sprintf("role %q not found", role))
	default:
		clientID, ttl := orDefault(spec.ClientID, role), spec.TTL
		if ttl == 0 {
			ttl = s.opts.TTL
		}
		now := time.Now()
		token := s.mint(map[string]any{
			"iss": s.VaultURL() + "/v1/identity/oidc", "sub": entityID(session.subject), "aud": clientID,
			"iat": now.Unix(), "exp": now.Add(ttl).Unix(), "namespace": "root",
		})
		writeJSON(w, map[string]any{
			"request_id": randomString(8), "lease_id": "", "renewable": false, "lease_duration": 0,
			"data":      map[string]any{"token": token, "client_id": clientID, "ttl": int(ttl / time.Second)},
			"wrap_info": nil, "warnings": nil, "auth": nil,
		})
	}
}

func (s *Server) vaultRevoke(w http.ResponseWriter, r *http.Request) {
	session, state := s.vaultSession(r)
	vr := &VaultRequest{Step: "revoke", Method: r.Method, Namespace: r.Header.Get("X-Vault-Namespace"), VaultToken: state}
	if canned, ok := s.record(r, Request{Subject: session.subject, Vault: vr}); ok {
		s.writeCanned(w, r, canned)
		return
	}
	o := s.opts.Vault
	switch {
	case r.Method != http.MethodPost && r.Method != http.MethodPut:
		writeVaultError(w, http.StatusMethodNotAllowed, "unsupported operation")
	case state != "issued" || vr.Namespace != o.Namespace:
		writeVaultError(w, http.StatusForbidden, "permission denied")
	case o.RevokeStatus != 0:
		writeVaultError(w, o.RevokeStatus, "revocation failed")
	default:
		s.mu.Lock()
		s.vault[r.Header.Get("X-Vault-Token")].revoked = true
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}
}

// LiveVaultTokens returns the Vault tokens the fake issued and nobody
// revoked.
func (s *Server) LiveVaultTokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var live []string
	for t, session := range s.vault {
		if !session.revoked {
			live = append(live, t)
		}
	}
	sort.Strings(live)
	return live
}

// vaultSession finds the session of r's X-Vault-Token and says what the
// header held (see VaultRequest.VaultToken).
func (s *Server) vaultSession(r *http.Request) (vaultSession, string) {
	token := r.Header.Get("X-Vault-Token")
	if token == "" {
		return vaultSession{}, ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	session, ok := s.vault[token]
	switch {
	case !ok:
		return vaultSession{}, "unknown"
	case session.revoked:
		return *session, "revoked"
	}
	return *session, "issued"
}

// entityID is the Vault entity of a pod identity: a stable, opaque UUID.
func entityID(subject string) string {
	sum := sha256.Sum256([]byte("entity:" + subject))
	h := hex.EncodeToString(sum[:16])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func writeVaultError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string][]string{"errors": {msg}})
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
