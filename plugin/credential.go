package plugin

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientauthv1 "k8s.io/client-go/pkg/apis/clientauthentication/v1"
	clientauthv1beta1 "k8s.io/client-go/pkg/apis/clientauthentication/v1beta1"
)

// WriteCredential writes an ExecCredential in apiVersion holding token, which
// client-go will reuse until expiry.
func WriteCredential(w io.Writer, apiVersion, token string, expiry time.Time) error {
	exp := &metav1.Time{Time: expiry.UTC().Truncate(time.Second)}
	meta := metav1.TypeMeta{APIVersion: apiVersion, Kind: "ExecCredential"}
	var cred any
	switch apiVersion {
	case APIVersionV1:
		cred = clientauthv1.ExecCredential{TypeMeta: meta,
			Status: &clientauthv1.ExecCredentialStatus{Token: token, ExpirationTimestamp: exp}}
	case APIVersionV1beta1:
		cred = clientauthv1beta1.ExecCredential{TypeMeta: meta,
			Status: &clientauthv1beta1.ExecCredentialStatus{Token: token, ExpirationTimestamp: exp}}
	default:
		return fmt.Errorf("cannot write ExecCredential %q; use %s or %s", apiVersion, APIVersionV1, APIVersionV1beta1)
	}
	data, err := json.Marshal(cred)
	if err != nil {
		return fmt.Errorf("encode ExecCredential: %w", err)
	}
	_, err = w.Write(append(data, '\n'))
	return err
}
