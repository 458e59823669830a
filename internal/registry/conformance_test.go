package registry_test

import (
	"os"
	"os/exec"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"

	"strata/internal/registry"
)

// TestConformancePull runs the OCI distribution-spec conformance suite's
// pull workflow against the handler with pre-seeded content (the push side
// is not implemented yet). Opt-in: set STRATA_CONFORMANCE_BIN to a built
// conformance.test binary (see /work/shared/TESTING.md).
func TestConformancePull(t *testing.T) {
	bin := os.Getenv("STRATA_CONFORMANCE_BIN")
	if bin == "" {
		t.Skip("STRATA_CONFORMANCE_BIN not set")
	}
	e := newEnv(t)
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	m := storeImage(t, e, img)
	e.backend.manifests["a/b:tagtest0"] = m
	e.backend.tags["a/b"] = []string{"tagtest0"}
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	cmd := exec.Command(bin)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "OCI_ROOT_URL="+e.srv.URL, "OCI_NAMESPACE=a/b", "OCI_TEST_PULL=1",
		"OCI_TAG_NAME=tagtest0", "OCI_MANIFEST_DIGEST="+m.Digest, "OCI_BLOB_DIGEST="+ld.String(), "OCI_HIDE_SKIPPED_WORKFLOWS=1")
	cmd.Env = append(cmd.Env, "OCI_REPORT_DIR="+cmd.Dir)
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatal(err)
	}
}

// TestConformanceAll runs all four workflows of the conformance suite
// against the handler with a push namespace. Opt-in like
// TestConformancePull; test/e2e runs the same suite against strata serve
// on every make test.
func TestConformanceAll(t *testing.T) {
	bin := os.Getenv("STRATA_CONFORMANCE_BIN")
	if bin == "" {
		t.Skip("STRATA_CONFORMANCE_BIN not set")
	}
	e := newEnvWith(t, func(o *registry.Options) { o.PushPrefix = "x" })
	cmd := exec.Command(bin)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "OCI_ROOT_URL="+e.srv.URL, "OCI_NAMESPACE=x/conf/a", "OCI_CROSSMOUNT_NAMESPACE=x/conf/b",
		"OCI_TEST_PULL=1", "OCI_TEST_PUSH=1", "OCI_TEST_CONTENT_DISCOVERY=1", "OCI_TEST_CONTENT_MANAGEMENT=1",
		"OCI_HIDE_SKIPPED_WORKFLOWS=0", "OCI_REPORT_DIR="+cmd.Dir)
	if d := os.Getenv("STRATA_CONFORMANCE_REPORT"); d != "" {
		cmd.Env = append(cmd.Env, "OCI_REPORT_DIR="+d)
	}
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatal(err)
	}
}
