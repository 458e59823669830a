package registries

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestDistributionAndBearerProxy(t *testing.T) {
	d := StartDistribution(t, DistributionOptions{})
	p := StartProxy(t, d.Host, ProxyOptions{Bearer: &BearerOptions{Users: map[string]string{"u": "p"}}})

	resp, err := http.Get("http://" + p.Host + "/v2/a/b/manifests/latest")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ch := resp.Header.Get("WWW-Authenticate")
	if resp.StatusCode != 401 || !strings.Contains(ch, `realm="http://`+p.Host+`/token"`) || !strings.Contains(ch, `scope="repository:a/b:pull"`) {
		t.Fatalf("unauthenticated: %d %q", resp.StatusCode, ch)
	}

	token := func(req *http.Request) string {
		t.Helper()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct{ Token string }
		_ = json.NewDecoder(resp.Body).Decode(&body)
		if resp.StatusCode != 200 || body.Token == "" {
			t.Fatalf("token %s: %d", req.Method, resp.StatusCode)
		}
		return body.Token
	}
	get, _ := http.NewRequest("GET", "http://"+p.Host+"/token?service=strata-test&scope=repository:a/b:pull", nil)
	get.SetBasicAuth("u", "p")
	form := url.Values{"grant_type": {"password"}, "username": {"u"}, "password": {"p"}, "scope": {"repository:a/b:pull"}}
	post, _ := http.NewRequest("POST", "http://"+p.Host+"/token", strings.NewReader(form.Encode()))
	post.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, tok := range []string{token(get), token(post)} {
		req, _ := http.NewRequest("GET", "http://"+p.Host+"/v2/a/b/tags/list", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 { // authorised; the repository does not exist
			t.Errorf("with token: %d", resp.StatusCode)
		}
		// A pull token does not allow a push.
		req, _ = http.NewRequest("POST", "http://"+p.Host+"/v2/a/b/blobs/uploads/", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("push with a pull token: %d", resp.StatusCode)
		}
	}
	d.Sync(t)
	reqs := d.Log.Requests()
	if len(Filter(reqs, func(r Request) bool { return r.URI == "/v2/a/b/tags/list" && r.Status == 404 })) != 2 {
		t.Errorf("access log: %v", reqs)
	}
	if m := d.Mutations(0); len(m) != 0 {
		t.Errorf("mutations reached the registry: %v", m)
	}
}
