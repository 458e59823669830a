package registry_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"strata/internal/registry"
)

// renamedError is a backend error that names things as the client
// addressed them, like nix.UnknownPackagesError for a renamed package.
type renamedError struct{}

func (renamedError) Error() string     { return "mysql was renamed to mariadb: ask for mariadb instead" }
func (renamedError) ErrorCode() string { return "MANIFEST_UNKNOWN" }
func (renamedError) HTTPStatus() int   { return 404 }
func (renamedError) ErrorDetail() any  { return map[string]string{"replacement": "mariadb"} }
func (renamedError) MessageFor(host, repo, ref string) string {
	return "mysql was renamed to mariadb: pull " + host + "/" + strings.Replace(repo, "mysql", "mariadb", 1) + " (ref " + ref + ")"
}

func TestAddressedErrorMessage(t *testing.T) {
	e := newEnv(t)
	e.backend.setErr(fmt.Errorf("linux/amd64: %w", renamedError{}))
	host := strings.TrimPrefix(e.srv.URL, "http://")
	resp, body := e.do(t, "GET", "/v2/shell/mysql/manifests/v1", nil)
	se := wantError(t, resp, body, 404, registry.CodeManifestUnknown)
	want := "mysql was renamed to mariadb: pull " + host + "/shell/mariadb (ref v1)"
	if len(se.Errors) != 1 || se.Errors[0].Message != want {
		t.Fatalf("errors %+v, want message %q", se.Errors, want)
	}
	if string(se.Errors[0].Detail) != `{"replacement":"mariadb"}` {
		t.Errorf("detail %s", se.Errors[0].Detail)
	}

	// The host is the one the client addressed, not the listener's.
	req, err := http.NewRequest("GET", e.srv.URL+"/v2/shell/mysql/manifests/latest", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "registry.example:5000"
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Body.Close()
	var se2 struct {
		Errors []struct{ Code, Message string }
	}
	if err := json.NewDecoder(r2.Body).Decode(&se2); err != nil {
		t.Fatal(err)
	}
	want = "mysql was renamed to mariadb: pull registry.example:5000/shell/mariadb (ref latest)"
	if r2.StatusCode != 404 || len(se2.Errors) != 1 || se2.Errors[0].Message != want {
		t.Errorf("status %d errors %+v, want message %q", r2.StatusCode, se2.Errors, want)
	}

	// Errors without MessageFor keep their own text.
	e.backend.setErr(&codedError{code: "MANIFEST_UNKNOWN", msg: "unknown package(s): helo"})
	resp, body = e.do(t, "GET", "/v2/helo/manifests/latest", nil)
	se = wantError(t, resp, body, 404, registry.CodeManifestUnknown)
	if len(se.Errors) != 1 || se.Errors[0].Message != "unknown package(s): helo" {
		t.Errorf("errors %+v", se.Errors)
	}
}
