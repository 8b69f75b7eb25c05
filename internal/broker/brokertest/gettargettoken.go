package brokertest

import (
	"net/http"
	"strings"
	"time"
)

// Path is where the fake broker serves OpenUnison's get-target-token: GET
// <Path>?targetName=T with the pod token as a Bearer credential, answered
// with a token for T in the configured Shape, or a plain-text error.
const Path = "/api/get-target-token"

// Shape is how the broker words a successful answer.
type Shape int

// The answer shapes real brokers give.
const (
	Raw            Shape = iota // the token as the whole plain-text body (OpenUnison)
	JSON                        // {"token": …, "expirationTimestamp": …}
	ExecCredential              // a whole client.authentication.k8s.io/v1 ExecCredential
)

// serveGetTargetToken answers at Path: a canned answer when one is queued,
// else 401 without a pod token or one Options.Review rejects, 400 without a
// target, 403 for a subject Options.Allow does not list, and a token.
func (s *Server) serveGetTargetToken(w http.ResponseWriter, r *http.Request) {
	bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	req := Request{Target: r.URL.Query().Get("targetName"), Subject: subjectOf(bearer), Authorization: len(r.Header.Values("Authorization")) > 0}
	canned, hasCanned := s.record(r, req)
	switch {
	case hasCanned:
		s.writeCanned(w, r, canned)
	case !ok || bearer == "":
		http.Error(w, "missing bearer token", http.StatusUnauthorized)
	case req.Target == "":
		http.Error(w, "missing targetName", http.StatusBadRequest)
	case !s.reviewed(bearer, req.Subject):
		http.Error(w, "pod token not accepted", http.StatusUnauthorized)
	case !s.allowed(req.Subject):
		http.Error(w, "subject not allowed", http.StatusForbidden)
	default:
		s.writeToken(w, req)
	}
}

func (s *Server) writeToken(w http.ResponseWriter, req Request) {
	exp := time.Now().Add(s.opts.TTL)
	tok := s.Issue(req.Target, req.Subject, exp)
	var expField any = exp.UTC().Format(time.RFC3339)
	if s.opts.NoExp {
		expField = nil
	}
	switch s.opts.Shape {
	case JSON:
		writeJSON(w, map[string]any{"token": tok, "expirationTimestamp": expField})
	case ExecCredential:
		writeJSON(w, map[string]any{
			"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
			"status": map[string]any{"token": tok, "expirationTimestamp": expField},
		})
	default:
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte(tok))
	}
}
