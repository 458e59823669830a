package builder

import (
	"context"
	"errors"
	"testing"
	"time"

	"strata/internal/buildreq"
	"strata/internal/nix"
)

// failingNix fails every build with err and counts the attempts.
type failingNix struct {
	*fakeNix
	err      error
	attempts int
}

func (f *failingNix) Build(context.Context, string, nix.Target, []string) (*nix.Result, error) {
	f.attempts++
	return nil, f.err
}

func TestRepeatingFailuresAreRemembered(t *testing.T) {
	cases := []struct {
		name     string
		err      error
		attempts int // builds for three requests
	}{
		{"build error", &nix.BuildError{Attrs: []string{"app"}, Log: "error: boom"}, 1},
		{"timeout", &nix.BuildError{Attrs: []string{"app"}, Timeout: true}, 3},
		{"cancelled", &nix.BuildError{Attrs: []string{"app"}, Canceled: true}, 3},
		{"other", errors.New("disk full"), 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, root := newFake(t)
			fn := &failingNix{fakeNix: f, err: c.err}
			b := newTestBuilder(t, f, root)
			b.opts.Nix = fn
			s := buildreq.Request{Name: "app", Ref: "latest", Packages: []string{"app"}}
			for i := 0; i < 3; i++ {
				if _, err := b.Build(context.Background(), s); !errors.Is(err, c.err) && !errors.As(err, new(*nix.BuildError)) {
					t.Fatalf("request %d: %v, want %v", i, err, c.err)
				}
			}
			if fn.attempts != c.attempts {
				t.Fatalf("%d builds for 3 requests, want %d", fn.attempts, c.attempts)
			}
		})
	}
}

func TestRememberedFailureExpires(t *testing.T) {
	f, root := newFake(t)
	fn := &failingNix{fakeNix: f, err: &nix.BuildError{Attrs: []string{"app"}}}
	b := newTestBuilder(t, f, root)
	b.opts.Nix = fn
	b.failed.ttl = 50 * time.Millisecond
	s := buildreq.Request{Name: "app", Ref: "latest", Packages: []string{"app"}}
	_, _ = b.Build(context.Background(), s)
	_, _ = b.Build(context.Background(), s)
	if fn.attempts != 1 {
		t.Fatalf("%d builds within the TTL, want 1", fn.attempts)
	}
	time.Sleep(80 * time.Millisecond)
	_, _ = b.Build(context.Background(), s)
	if fn.attempts != 2 {
		t.Fatalf("%d builds after the TTL, want 2", fn.attempts)
	}
	// Unknown packages are remembered too, and a different image is not
	// affected by another's failure.
	other := buildreq.Request{Name: "tool", Ref: "latest", Packages: []string{"tool"}}
	if _, err := b.Build(context.Background(), other); err == nil {
		t.Fatal("the failing fake built tool")
	}
	if fn.attempts != 3 {
		t.Fatalf("another image's build was answered from the failure cache")
	}
}

func TestFailureCacheIsBounded(t *testing.T) {
	f := failures{ttl: time.Hour}
	err := &nix.BuildError{}
	for i := 0; i < maxFailures+10; i++ {
		f.put(string(rune(i))+"key", err)
	}
	if len(f.m) != maxFailures {
		t.Fatalf("%d entries, want at most %d", len(f.m), maxFailures)
	}
}
