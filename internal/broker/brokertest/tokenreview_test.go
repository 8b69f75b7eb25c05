package brokertest

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
)

// TestTokenReview runs the reviewer against a stub API server and checks
// what it sends and how it reads the three kinds of answer.
func TestTokenReview(t *testing.T) {
	var got struct {
		Kind string
		Spec struct {
			Token     string
			Audiences []string
		}
	}
	answer := ""
	api := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/apis/authentication.k8s.io/v1/tokenreviews" || json.NewDecoder(r.Body).Decode(&got) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if answer == "" {
			http.Error(w, `{"kind":"Status","code":403}`, http.StatusForbidden)
			return
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(answer))
	}))
	defer api.Close()
	review := TokenReview(api.Client(), api.URL, "token-broker")

	answer = `{"status":{"authenticated":true,"user":{"username":"system:serviceaccount:argocd:x"}}}`
	if sub, err := review("pod-token"); err != nil || sub != "system:serviceaccount:argocd:x" {
		t.Errorf("authenticated: %q, %v", sub, err)
	}
	if got.Kind != "TokenReview" || got.Spec.Token != "pod-token" || !reflect.DeepEqual(got.Spec.Audiences, []string{"token-broker"}) {
		t.Errorf("request = %+v", got)
	}
	answer = `{"status":{"authenticated":false,"error":"service account deleted"}}`
	if _, err := review("pod-token"); !errors.Is(err, ErrNotAuthenticated) {
		t.Errorf("not authenticated: err = %v, want ErrNotAuthenticated", err)
	}
	answer = ""
	if _, err := review("pod-token"); err == nil || errors.Is(err, ErrNotAuthenticated) {
		t.Errorf("HTTP 403: err = %v, want another error", err)
	}
}
