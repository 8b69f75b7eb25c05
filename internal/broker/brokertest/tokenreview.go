package brokertest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// reviewed reports whether the pod token passes Options.Review as the
// subject it claims; true when no Review is set.
func (s *Server) reviewed(token, claimed string) bool {
	if s.opts.Review == nil {
		return true
	}
	subject, err := s.opts.Review(token)
	return err == nil && subject == claimed
}

// ErrNotAuthenticated is returned by a TokenReview reviewer when the API
// server answers that the token is not (or no longer) valid.
var ErrNotAuthenticated = errors.New("token not authenticated")

// TokenReview returns an Options.Review that asks a Kubernetes API server,
// as OpenUnison does: it POSTs an authentication.k8s.io/v1 TokenReview for
// the token with the given audiences to server (https://host:port) through
// client, which must carry credentials allowed to create TokenReviews, and
// returns the authenticated username.
func TokenReview(client *http.Client, server string, audiences ...string) func(token string) (string, error) {
	return func(token string) (string, error) {
		body, _ := json.Marshal(map[string]any{
			"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
			"spec": map[string]any{"token": token, "audiences": audiences},
		})
		resp, err := client.Post(server+"/apis/authentication.k8s.io/v1/tokenreviews", "application/json", bytes.NewReader(body))
		if err != nil {
			return "", fmt.Errorf("token review: %w", err)
		}
		defer resp.Body.Close()
		return reviewResult(resp)
	}
}

// reviewResult reads a TokenReview answer.
func reviewResult(resp *http.Response) (string, error) {
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("token review: %w", err)
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("token review: HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(data))
	}
	var review struct {
		Status struct {
			Authenticated bool   `json:"authenticated"`
			Error         string `json:"error"`
			User          struct {
				Username string `json:"username"`
			} `json:"user"`
		} `json:"status"`
	}
	if err := json.Unmarshal(data, &review); err != nil {
		return "", fmt.Errorf("token review: %w", err)
	}
	if !review.Status.Authenticated {
		return "", fmt.Errorf("%w: %s", ErrNotAuthenticated, review.Status.Error)
	}
	return review.Status.User.Username, nil
}
