package run

import (
	"slices"
	"testing"
)

func TestIsEnvName(t *testing.T) {
	for name, want := range map[string]bool{
		"ARGOCD_AUTH_TOKEN": true, "_x": true, "a1": true,
		"": false, "1A": false, "A-B": false, "A B": false, "A=B": false, "Ä": false,
	} {
		if got := isEnvName(name); got != want {
			t.Errorf("isEnvName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestWithVarReplacesEveryEarlierValue(t *testing.T) {
	got := withVar([]string{"A=1", "T=old", "B=2", "T=older", "TT=3"}, "T", "new")
	want := []string{"A=1", "B=2", "TT=3", "T=new"}
	if !slices.Equal(got, want) {
		t.Errorf("withVar = %q, want %q", got, want)
	}
}

func TestPrepareDropsTheSeparator(t *testing.T) {
	c, err := Prepare([]string{"--", "sh", "-c", "true"}, "X")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.argv, []string{"sh", "-c", "true"}) {
		t.Errorf("argv = %q, want the command without --", c.argv)
	}
}
