package registry

import (
	"io"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// accessLog writes the access log as JSON lines in exactly the shape of
// slog's JSON handler ({"time","level","msg":"request","method","path",
// "status","bytes","duration","remote"}), encoded by hand (slog's generic
// encoder costs several microseconds a request, more than the rest of a
// cached manifest GET).
//
// Lines are group-committed: a request appends its line to a shared buffer
// and wakes a writer goroutine, which writes everything waiting in one
// Write. An idle server's line goes out at once; under load, one write
// system call carries many lines instead of one per request. Past
// maxPending bytes waiting, a request writes itself (back-pressure).
type accessLog struct {
	w    io.Writer
	kick chan struct{}

	mu      sync.Mutex
	pending []byte
}

const maxPending = 1 << 20

func newAccessLog(w io.Writer) *accessLog {
	l := &accessLog{w: w, kick: make(chan struct{}, 1)}
	go l.run()
	return l
}

// run writes the waiting lines whenever there are some.
func (l *accessLog) run() {
	var out []byte
	for range l.kick {
		l.mu.Lock()
		out, l.pending = l.pending, out[:0]
		l.mu.Unlock()
		if len(out) > 0 {
			_, _ = l.w.Write(out)
		}
	}
}

var logBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func (l *accessLog) write(now time.Time, method, path string, status int, bytes int64, d time.Duration, remote string) {
	bp := logBufs.Get().(*[]byte)
	b := (*bp)[:0]
	b = append(b, `{"time":"`...)
	b = now.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"INFO","msg":"request","method":`...)
	b = appendJSONString(b, method)
	b = append(b, `,"path":`...)
	b = appendJSONString(b, path)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, bytes, 10)
	b = append(b, `,"duration":`...)
	b = strconv.AppendInt(b, int64(d), 10)
	b = append(b, `,"remote":`...)
	b = appendJSONString(b, remote)
	b = append(b, "}\n"...)
	l.mu.Lock()
	if len(l.pending) > maxPending {
		// The writer is behind: write with the lock held, in order.
		_, _ = l.w.Write(l.pending)
		l.pending = l.pending[:0]
	}
	l.pending = append(l.pending, b...)
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default: // the writer is awake already and will see this line
	}
	*bp = b
	logBufs.Put(bp)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string (invalid UTF-8 becomes
// U+FFFD, as in encoding/json).
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else if r == '\u2028' || r == '\u2029' {
			b = append(b, `\u202`...)
			b = append(b, hexDigits[r&0xf])
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
