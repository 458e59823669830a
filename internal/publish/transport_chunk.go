package publish

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// defaultChunkSize is the chunk size of the chunked upload fallback.
const defaultChunkSize = 8 << 20

// minChunkSize is the smallest chunk the fallback halves down to.
const minChunkSize = 64 << 10

// chunker uploads a blob in PATCH chunks with Content-Range when a registry
// (or a proxy in front of it) refuses the single PATCH ggcr sends with 413,
// or always for blobs above a configured chunk size. It answers ggcr with the
// registry's last 202, whose Location ggcr then commits with PUT ?digest=.
// After a 413 it starts again from offset 0 on the same upload location (a
// refused request body was not taken); a registry that disagrees answers 416
// and ggcr restarts the whole upload. Each chunk is retried on its own.
type chunker struct {
	inner http.RoundTripper
	size  int64 // forced chunk size; 0: only as a fallback
}

func (c *chunker) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodPatch || !strings.Contains(r.URL.Path, "/blobs/uploads/") ||
		r.Header.Get("Content-Range") != "" || r.ContentLength <= 0 || r.GetBody == nil {
		return c.inner.RoundTrip(r)
	}
	if c.size > 0 && r.ContentLength > c.size {
		if r.Body != nil {
			r.Body.Close()
		}
		return c.upload(r, c.size)
	}
	resp, err := c.inner.RoundTrip(r)
	if err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge {
		return resp, err
	}
	drain(resp)
	size := int64(defaultChunkSize)
	if c.size > 0 {
		size = c.size
	}
	for size >= r.ContentLength && size > minChunkSize {
		size /= 2
	}
	return c.upload(r, size)
}

// upload sends r's body from offset 0 in chunks of size bytes, halving the
// size (down to minChunkSize) whenever a chunk is refused with 413.
func (c *chunker) upload(r *http.Request, size int64) (*http.Response, error) {
	body, err := r.GetBody()
	if err != nil {
		return nil, fmt.Errorf("chunked upload: %w", err)
	}
	defer body.Close()
	loc := r.URL
	var off int64
	var last *http.Response
	for off < r.ContentLength {
		n := min(size, r.ContentLength-off)
		// A fresh buffer per chunk: net/http may still read a request body
		// after RoundTrip returns, so a sent chunk is never written again.
		data := make([]byte, n)
		if _, err := io.ReadFull(body, data); err != nil {
			return nil, fmt.Errorf("chunked upload: read blob at %d: %w", off, err)
		}
		for {
			resp, err := c.inner.RoundTrip(chunkRequest(r, loc, off, data[:n]))
			if err != nil {
				if last != nil {
					last.Body.Close()
				}
				return nil, err
			}
			if resp.StatusCode == http.StatusRequestEntityTooLarge && n > minChunkSize {
				drain(resp)
				// Send the first half now; the second half is read again
				// first in the next round.
				body = io.NopCloser(io.MultiReader(bytes.NewReader(data[n/2:n]), body))
				n /= 2
				size = n
				continue
			}
			if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusCreated {
				if last != nil {
					last.Body.Close()
				}
				return resp, nil
			}
			next, err := nextLocation(loc, resp)
			if err != nil {
				resp.Body.Close()
				return nil, err
			}
			if last != nil {
				last.Body.Close()
			}
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			last = resp
			loc = next
			break
		}
		off += n
	}
	return last, nil
}

// chunkRequest is the PATCH of chunk, at offset off of r's blob, to the
// upload location loc.
func chunkRequest(r *http.Request, loc *url.URL, off int64, chunk []byte) *http.Request {
	n := int64(len(chunk))
	req := r.Clone(r.Context())
	req.URL = loc
	req.Host = ""
	req.Body = io.NopCloser(bytes.NewReader(chunk))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(chunk)), nil }
	req.ContentLength = n
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Content-Range", fmt.Sprintf("%d-%d", off, off+n-1))
	return req
}

func nextLocation(base *url.URL, resp *http.Response) (*url.URL, error) {
	l := resp.Header.Get("Location")
	if l == "" {
		return nil, errors.New("chunked upload: registry answered without a Location header")
	}
	u, err := url.Parse(l)
	if err != nil {
		return nil, fmt.Errorf("chunked upload: bad Location: %w", err)
	}
	return base.ResolveReference(u), nil
}
