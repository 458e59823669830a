package cli

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"strata/internal/storage"
	"strata/test/minio"
)

func TestStorageFlagsFromEnvironment(t *testing.T) {
	vars := map[string]string{
		"AWS_ENDPOINT_URL":      "http://minio:9000",
		"S3_BUCKET":             "images",
		"AWS_REGION":            "eu-west-1",
		"AWS_ACCESS_KEY_ID":     "AKIDEXAMPLE",
		"AWS_SECRET_ACCESS_KEY": "very-secret-value",
	}
	env := &Env{Stdout: io.Discard, Stderr: io.Discard, Getenv: func(k string) string { return vars[k] }}
	f := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	o := &storageOptions{}
	addStorageFlags(f, env, o)
	for name, want := range map[string]string{"s3-endpoint": "http://minio:9000", "s3-bucket": "images", "s3-region": "eu-west-1", "redirect-blobs": "0s"} {
		if got := f.Lookup(name).DefValue; got != want {
			t.Errorf("--%s defaults to %q, want %q", name, got, want)
		}
	}
	if o.accessKey != "AKIDEXAMPLE" || o.secretKey != "very-secret-value" {
		t.Fatal("credentials not read from the environment")
	}
	// S3_ENDPOINT wins over AWS_ENDPOINT_URL.
	vars["S3_ENDPOINT"] = "127.0.0.1:9000"
	f = pflag.NewFlagSet("serve", pflag.ContinueOnError)
	addStorageFlags(f, env, &storageOptions{})
	if got := f.Lookup("s3-endpoint").DefValue; got != "127.0.0.1:9000" {
		t.Errorf("--s3-endpoint defaults to %q", got)
	}
	// Secrets are no flags and appear in no help.
	var help bytes.Buffer
	f.SetOutput(&help)
	f.PrintDefaults()
	if strings.Contains(help.String(), "very-secret-value") || strings.Contains(help.String(), "AKIDEXAMPLE") || f.Lookup("s3-secret-key") != nil {
		t.Fatalf("credentials in the flags:\n%s", help.String())
	}
	if d := describeStorage("s3", "", o); strings.Contains(d, "secret") || d != "s3://images/ at http://minio:9000" {
		t.Fatalf("describeStorage = %q", d)
	}
}

func TestOpenStorageChecks(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		backend, path string
		o             storageOptions
		want          string
	}{
		{"filesystem", "", storageOptions{}, "--storage-path"},
		{"filesystem", t.TempDir(), storageOptions{redirect: time.Minute}, "--redirect-blobs needs --storage s3"},
		{"s3", "", storageOptions{}, "--s3-bucket"},
		{"s3", "", storageOptions{bucket: "b", redirect: time.Second}, "at least 1m"},
		{"s3", "", storageOptions{bucket: "b", accessKey: "x"}, "both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"},
		{"gcs", "", storageOptions{}, "use filesystem or s3"},
	} {
		_, err := openStorage(ctx, tc.backend, tc.path, &tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("openStorage(%s, %q) = %v, want an error about %s", tc.backend, tc.path, err, tc.want)
		}
	}
	s, err := openStorage(ctx, "filesystem", t.TempDir(), &storageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*storage.FS); !ok {
		t.Fatalf("filesystem store is %T", s)
	}
}

func TestOpenStorageS3(t *testing.T) {
	srv := minio.Start(t)
	bucket := srv.NewBucket(t)
	o := &storageOptions{endpoint: srv.Addr, insecure: true, bucket: bucket, prefix: "strata", redirect: 5 * time.Minute,
		accessKey: srv.AccessKey, secretKey: srv.SecretKey}
	s, err := openStorage(context.Background(), "s3", t.TempDir()+"/staging", o)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(storage.Redirector); !ok {
		t.Fatalf("%T is no Redirector", s)
	}
	o.secretKey = "wrong-" + srv.SecretKey
	_, err = openStorage(context.Background(), "s3", "", o)
	if err == nil || strings.Contains(err.Error(), srv.SecretKey) {
		t.Fatalf("wrong secret: %v", err)
	}
}
