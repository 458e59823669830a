package nix

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// nixpkgs keeps the old name of a renamed or removed package for a while as
// an alias that throws a message naming the replacement:
//
//	mysql = throw "'mysql' has been renamed to/replaced by 'mariadb'";
//	foo = throw "'foo' has been removed from nixpkgs, as it was unmaintained";
//
// or, for a while before that, as an alias that still evaluates but warns
// (lib.warn, a builtins.trace of "warning: ..."). builtins.tryEval says only
// that an attribute failed; the message is in Nix's stderr, whose layout
// changed between versions:
//
//	Nix 2.8:    error: 'mysql' has been renamed to/replaced by 'mariadb'
//	            (use '--show-trace' to show detailed location information)
//
//	Nix 2.19+:  error:
//	                   … while evaluating the attribute 'mysql'
//	                     at /pkgs/default.nix:12:3:
//	                   …
//	                   error: 'mysql' has been renamed to/replaced by 'mariadb'
//
// This file reads the message out of either layout and recognises renames
// and removals in it.

// maxMessage bounds a message taken from Nix's output, in bytes.
const maxMessage = 512

var ansiRE = regexp.MustCompile(`\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]`)

// cleanLine strips terminal escapes and control characters from a line of
// Nix's output.
func cleanLine(s string) string {
	s = ansiRE.ReplaceAllString(s, "")
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return strings.Map(func(r rune) rune {
		if r == '\t' {
			return ' '
		}
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return -1
		}
		return r
	}, s)
}

// clip cuts s to at most n bytes on a rune boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// throwMessage is the message of the error Nix reported in lines (its
// stderr): the text after the last "error:" that has any, with the
// lines that continue it, joined by spaces; "" when there is none. Trace
// frames ("… while evaluating"), source excerpts and the --show-trace hint
// are not part of it.
func throwMessage(lines []string) string {
	start := -1
	var first string
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(cleanLine(lines[i]))
		if rest, ok := strings.CutPrefix(l, "error:"); ok && strings.TrimSpace(rest) != "" {
			start, first = i, strings.TrimSpace(rest)
			break
		}
	}
	if start < 0 {
		return ""
	}
	parts := []string{first}
	for _, raw := range lines[start+1:] {
		l := strings.TrimSpace(cleanLine(raw))
		if l == "" || strings.HasPrefix(l, "(use '--show-trace'") || strings.HasPrefix(l, "…") ||
			strings.HasPrefix(l, "error:") || strings.HasPrefix(l, "warning:") || strings.HasPrefix(l, "trace:") ||
			strings.HasPrefix(l, "at ") || strings.HasPrefix(l, "Did you mean") {
			break
		}
		// Only lines indented under the message continue it.
		if !strings.HasPrefix(raw, " ") && !strings.HasPrefix(raw, "\t") {
			break
		}
		parts = append(parts, l)
	}
	return clip(strings.Join(parts, " "), maxMessage)
}

// traceWarnings are the warnings the evaluation printed: builtins.trace
// lines ("trace: warning: ...", as lib.warn makes them) and current Nix's
// "evaluation warning: ..." (builtins.warn), cleaned, in order, without
// duplicates.
func traceWarnings(lines []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, raw := range lines {
		l := strings.TrimSpace(cleanLine(raw))
		var msg string
		if rest, ok := strings.CutPrefix(l, "trace:"); ok {
			msg = strings.TrimSpace(rest)
		} else if rest, ok := strings.CutPrefix(l, "evaluation warning:"); ok {
			msg = strings.TrimSpace(rest)
		} else {
			continue
		}
		msg = strings.TrimSpace(strings.TrimPrefix(msg, "warning:"))
		if msg == "" || seen[msg] {
			continue
		}
		seen[msg] = true
		out = append(out, clip(msg, maxMessage))
	}
	return out
}

// quote is a quotation mark of either kind, as package sets write them.
const quote = "['\"`\u2018\u2019\u201c\u201d]?"

var renameRE = regexp.MustCompile(`(?i)(?:^|[\s(:])` + quote + `((?:pkgs\.)?[A-Za-z0-9_+][A-Za-z0-9._+-]*)` + quote +
	`,?\s+(?:has\s+been|have\s+been|was|were|is)\s+(?:renamed|replaced|superseded|moved)` +
	`(?:\s+to/replaced)?\s+(?:to|by|with)\s+(?:the\s+(?:package|attribute)\s+)?` +
	quote + `((?:pkgs\.)?[A-Za-z0-9_+][A-Za-z0-9._+-]*)`)

var removedRE = regexp.MustCompile(`(?i)\b(?:has\s+been|have\s+been|was|were|is\s+now)\s+(?:removed|dropped|deleted)\b|\bno\s+longer\s+(?:available|maintained|packaged|exists|supported)\b|\b(?:removed|dropped)\s+from\s+nixpkgs\b`)

// parseRename finds a rename in a message a package set threw or warned
// with ("'mysql' has been renamed to/replaced by 'mariadb'", "foo was
// renamed to bar", "`x` has been replaced by `y`"): the old and the new
// attribute path. ok is false when the message names no valid new
// attribute path.
func parseRename(msg string) (oldName, newName string, ok bool) {
	m := renameRE.FindStringSubmatch(cleanLine(msg))
	if m == nil {
		return "", "", false
	}
	oldName = strings.TrimPrefix(strings.TrimRight(m[1], "."), "pkgs.")
	newName = strings.TrimPrefix(strings.TrimRight(m[2], ".-"), "pkgs.")
	if _, valid := splitName(newName); !valid {
		return "", "", false
	}
	if _, valid := splitName(oldName); !valid {
		oldName = ""
	}
	return oldName, newName, true
}

// isRemoval reports whether a thrown message says the package was
// removed.
func isRemoval(msg string) bool { return removedRE.MatchString(cleanLine(msg)) }

// qualify places a replacement named without its set ("prometheus-client"
// for python3Packages.prometheus_client) in the set of attr.
func qualify(attr, replacement string) string {
	if strings.Contains(replacement, ".") {
		return replacement
	}
	if i := strings.LastIndexByte(attr, '.'); i >= 0 {
		return attr[:i+1] + replacement
	}
	return replacement
}
