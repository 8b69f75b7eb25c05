package broker

import (
	"strings"
	"testing"
	"time"
)

func TestOAuthAnswerExpiresIn(t *testing.T) {
	sent := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, expiresIn string
		want            time.Duration // after sent; zero: no expiry
		wantErr         string
	}{
		{name: "number", expiresIn: `3599`, want: 3599 * time.Second},
		{name: "string, as Entra's v1 endpoint writes it", expiresIn: `"3599"`, want: 3599 * time.Second},
		{name: "null", expiresIn: `null`},
		{name: "zero", expiresIn: `0`},
		{name: "negative", expiresIn: `"-5"`},
		{name: "beyond a Duration", expiresIn: `99999999999999`, want: time.Duration(maxSeconds) * time.Second},
		{name: "a word", expiresIn: `"soon"`, wantErr: `field "expires_in" has the wrong type`},
		{name: "a fraction", expiresIn: `3599.5`, wantErr: `field "expires_in" has the wrong type`},
		{name: "a bool", expiresIn: `true`, wantErr: `field "expires_in" has the wrong type`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := parseOAuthAnswer([]byte(`{"access_token":"tok","expires_in":`+tc.expiresIn+`}`), "broker.test", "grant", sent)
			switch {
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
			case tc.wantErr == "" && err != nil:
				t.Fatalf("err = %v", err)
			case tc.wantErr != "":
				return
			}
			if got := tok.Expiry; tc.want == 0 && !got.IsZero() || tc.want != 0 && !got.Equal(sent.Add(tc.want)) {
				t.Errorf("expiry = %v, want sent + %v", got, tc.want)
			}
		})
	}
}
