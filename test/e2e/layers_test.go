package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// blobGets returns the digests of the blobs fetched with GET, from the
// registry's access log.
func blobGets(s *server) map[string]int {
	out := map[string]int{}
	for _, rec := range s.logRecords("request") {
		path, _ := rec["path"].(string)
		if rec["method"] == "GET" && strings.Contains(path, "/blobs/sha256:") {
			out[path[strings.LastIndex(path, "/")+1:]]++
		}
	}
	return out
}

func layerDigests(t *testing.T, s *server, name string) []string {
	t.Helper()
	_, _, body := manifestDigest(t, s.Addr, name, "latest")
	var m struct {
		Layers []struct{ Digest string } `json:"layers"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range m.Layers {
		out = append(out, l.Digest)
	}
	return out
}

// A client that has one image downloads only the new layers of an
// overlapping one.
func TestSecondPullFetchesOnlyNewLayers(t *testing.T) {
	s := startServer(t, serverOpts{})
	p := newPodman(t)
	first, second := "shell/bigapp", "shell/bigapp/hello/iana-etc"
	p.must(5*time.Minute, "pull", "--tls-verify=false", s.Addr+"/"+first)
	fetched := blobGets(s)
	a := layerDigests(t, s, first)
	b := layerDigests(t, s, second)
	inA := map[string]bool{}
	for _, d := range a {
		inA[d] = true
		if fetched[d] == 0 {
			t.Fatalf("first pull did not fetch its layer %s", d)
		}
	}
	shared, fresh := 0, 0
	for _, d := range b {
		if inA[d] {
			shared++
		} else {
			fresh++
		}
	}
	if shared < 2 || fresh == 0 {
		t.Fatalf("%s and %s share %d layers and differ in %d; want the store paths of %s shared", first, second, shared, fresh, first)
	}
	p.must(5*time.Minute, "pull", "--tls-verify=false", s.Addr+"/"+second)
	after := blobGets(s)
	for _, d := range b {
		got := after[d] - fetched[d]
		switch {
		case inA[d] && got != 0:
			t.Errorf("second pull fetched shared layer %s again", d)
		case !inA[d] && got == 0:
			t.Errorf("second pull did not fetch its new layer %s", d)
		}
	}
	t.Logf("second pull: %d layers shared with the first, %d fetched", shared, fresh)
}
