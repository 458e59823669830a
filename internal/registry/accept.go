package registry

import (
	"strconv"
	"strings"
)

// ParseAccept parses the values of a request's Accept headers (several
// headers, each a comma-separated list) into media types, lower-cased, in
// order, without duplicates. Parameters are dropped; q-values are ignored
// except that an entry with q=0 is left out.
func ParseAccept(h []string) []string {
	var out []string
	seen := make(map[string]bool)
	for _, v := range h {
		for _, part := range strings.Split(v, ",") {
			mt, params, _ := strings.Cut(part, ";")
			mt = strings.ToLower(strings.TrimSpace(mt))
			if mt == "" || !validMediaType(mt) || seen[mt] || qZero(params) {
				continue
			}
			seen[mt] = true
			out = append(out, mt)
		}
	}
	return out
}

// validMediaType accepts "type/subtype" made of token characters.
func validMediaType(mt string) bool {
	typ, sub, ok := strings.Cut(mt, "/")
	if !ok || typ == "" || sub == "" {
		return false
	}
	for _, c := range typ + sub {
		if !isTokenChar(c) {
			return false
		}
	}
	return true
}

func isTokenChar(c rune) bool {
	if c <= ' ' || c >= 0x7f {
		return false
	}
	return !strings.ContainsRune(`()<>@,;:\"/[]?={}`, c)
}

// qZero reports whether the parameters hold a q-value of zero.
func qZero(params string) bool {
	for _, p := range strings.Split(params, ";") {
		k, v, ok := strings.Cut(p, "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "q") {
			continue
		}
		q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		return err == nil && q == 0
	}
	return false
}
