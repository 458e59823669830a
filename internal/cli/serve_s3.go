package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/pflag"

	"strata/internal/storage"
)

// storageOptions are the flags of the object-storage backend of strata
// serve (--storage s3), and blob redirects. Credentials are not flags:
// they come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
// AWS_SESSION_TOKEN, else from the pod's or instance's IAM role, and are
// never printed or logged.
type storageOptions struct {
	endpoint       string
	publicEndpoint string
	bucket         string
	region         string
	prefix         string
	insecure       bool
	redirect       time.Duration

	accessKey, secretKey, sessionToken string
}

// addStorageFlags defines the S3 and redirect flags on f; their defaults
// come from the environment of env (S3_ENDPOINT or AWS_ENDPOINT_URL,
// S3_BUCKET, AWS_REGION or AWS_DEFAULT_REGION), and the credentials are
// read from it.
func addStorageFlags(f *pflag.FlagSet, env *Env, o *storageOptions) {
	get := env.Getenv
	first := func(names ...string) string {
		for _, n := range names {
			if v := get(n); v != "" {
				return v
			}
		}
		return ""
	}
	f.StringVar(&o.endpoint, "s3-endpoint", first("S3_ENDPOINT", "AWS_ENDPOINT_URL"),
		"with --storage s3: the S3 API endpoint, host:port or http(s)://host:port (S3_ENDPOINT, AWS_ENDPOINT_URL; default AWS)")
	f.StringVar(&o.publicEndpoint, "s3-public-endpoint", "",
		"with --redirect-blobs: the endpoint clients reach the object store at, when it differs from --s3-endpoint (default --s3-endpoint)")
	f.StringVar(&o.bucket, "s3-bucket", get("S3_BUCKET"), "with --storage s3: the bucket, which must exist (S3_BUCKET)")
	f.StringVar(&o.region, "s3-region", first("AWS_REGION", "AWS_DEFAULT_REGION"), "with --storage s3: the bucket's region (AWS_REGION; default: asked of the endpoint)")
	f.StringVar(&o.prefix, "s3-prefix", "", "with --storage s3: a key prefix for strata's objects in a shared bucket, e.g. strata/")
	f.BoolVar(&o.insecure, "s3-insecure", false, "with --storage s3: plain HTTP to an --s3-endpoint given without a scheme")
	f.DurationVar(&o.redirect, "redirect-blobs", 0,
		"with --storage s3: answer blob GETs with a redirect to a pre-signed URL valid this long, e.g. 5m (0: strata serves the bytes)")
	o.accessKey = get("AWS_ACCESS_KEY_ID")
	o.secretKey = get("AWS_SECRET_ACCESS_KEY")
	o.sessionToken = get("AWS_SESSION_TOKEN")
}

// openStorage opens the store of backend "filesystem" (in directory path)
// or "s3" (the bucket of o; path, when set, holds staged writes until they
// are uploaded, default the system temp dir). It checks the flags that go
// together.
func openStorage(ctx context.Context, backend, path string, o *storageOptions) (storage.Store, error) {
	switch backend {
	case "filesystem", "":
		if o.redirect != 0 {
			return nil, errors.New("--redirect-blobs needs --storage s3: the filesystem cannot pre-sign URLs")
		}
		if path == "" {
			return nil, errors.New("no storage directory: set --storage-path (or STORAGE_PATH)")
		}
		return storage.NewFS(path)
	case "s3":
		if o.bucket == "" {
			return nil, errors.New("--storage s3 needs a bucket: set --s3-bucket (or S3_BUCKET)")
		}
		if o.redirect < 0 || o.redirect > 7*24*time.Hour {
			return nil, fmt.Errorf("--redirect-blobs %v: use 0 (off) or a duration up to 168h", o.redirect)
		}
		if o.redirect > 0 && o.redirect < time.Minute {
			return nil, fmt.Errorf("--redirect-blobs %v: use at least 1m so that slow pulls can finish", o.redirect)
		}
		if (o.accessKey == "") != (o.secretKey == "") {
			return nil, errors.New("set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither (to use the IAM role)")
		}
		if path != "" {
			if err := os.MkdirAll(path, 0o755); err != nil {
				return nil, fmt.Errorf("--storage-path (staging of S3 writes): %w", err)
			}
		}
		s, err := storage.NewS3(ctx, storage.S3Options{
			Endpoint: o.endpoint, PublicEndpoint: o.publicEndpoint, Bucket: o.bucket, Region: o.region,
			Prefix: o.prefix, Insecure: o.insecure, TempDir: path,
			AccessKeyID: o.accessKey, SecretAccessKey: o.secretKey, SessionToken: o.sessionToken,
		})
		if err != nil {
			return nil, fmt.Errorf("--storage s3: %w", err)
		}
		return s, nil
	default:
		return nil, fmt.Errorf("--storage %q: use filesystem or s3", backend)
	}
}

// describeStorage says where the store is, for the startup log line;
// never the credentials.
func describeStorage(backend, path string, o *storageOptions) string {
	if backend != "s3" {
		return path
	}
	ep := o.endpoint
	if ep == "" {
		ep = "s3.amazonaws.com"
	}
	return "s3://" + o.bucket + "/" + o.prefix + " at " + ep
}
