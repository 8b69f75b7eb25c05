package plugin

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// WriteCredential writes an ExecCredential in apiVersion holding token, which
// client-go will reuse until expiry.
func WriteCredential(w io.Writer, apiVersion, token string, expiry time.Time) error {
	if apiVersion != APIVersionV1 && apiVersion != APIVersionV1beta1 {
		return fmt.Errorf("cannot write ExecCredential %q; use %s or %s", apiVersion, APIVersionV1, APIVersionV1beta1)
	}
	cred := execCredential{Kind: "ExecCredential", APIVersion: apiVersion,
		Status: &credentialStatus{Token: token, ExpirationTimestamp: wireTime(expiry)}}
	data, err := json.Marshal(cred)
	if err != nil {
		return fmt.Errorf("encode ExecCredential: %w", err)
	}
	_, err = w.Write(append(data, '\n'))
	return err
}
