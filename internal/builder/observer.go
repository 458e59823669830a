package builder

import "time"

// Observer receives the builder's events, for metrics. Its methods are
// called from several goroutines at once and must return quickly.
type Observer interface {
	// BuildStarted is called when an image build starts (an image found
	// in the cache is not a build).
	BuildStarted()
	// BuildFinished is called when a build ends after d; err is nil on
	// success.
	BuildFinished(d time.Duration, err error)
	// LayerPacked is called for each layer a build packs and stores.
	LayerPacked()
	// LayerCached is called for each layer a build finds stored already.
	LayerCached()
}

type nopObserver struct{}

func (nopObserver) BuildStarted()                      {}
func (nopObserver) BuildFinished(time.Duration, error) {}
func (nopObserver) LayerPacked()                       {}
func (nopObserver) LayerCached()                       {}

// observer returns Options.Observer, or one that does nothing.
func (b *Builder) observer() Observer {
	if b.opts.Observer != nil {
		return b.opts.Observer
	}
	return nopObserver{}
}
