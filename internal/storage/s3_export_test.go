package storage

import (
	"context"
	"time"
)

// CleanS3StagingForTest runs the staging clean-up of NewS3 with a cutoff.
func CleanS3StagingForTest(ctx context.Context, s *S3, cutoff time.Time) error {
	return s.cleanStaging(ctx, cutoff)
}

// SetConditionalWritesForTest switches the lease protocol, to test the
// fallback for stores without conditional writes.
func SetConditionalWritesForTest(s *S3, on bool) { s.condWrite = on }
