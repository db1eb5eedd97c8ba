package history

import "encoding/json"

// The fast path of Reader.parse: a decoder for the one shape locksim's
// writers produce (a compact object of the known fields, each at most once,
// with plain ASCII strings and integer numbers). It fills w exactly as
// json.Unmarshal would, or reports false for anything else (whitespace,
// escapes, non-ASCII, other fields or types, null, bad syntax), and parse
// then falls back to encoding/json, so that what is accepted and every
// error message stay those of encoding/json.

// maxInterned bounds the strings a Reader interns.
const maxInterned = 4096

// fast decodes line into w (which the caller set to wire{T: missingT}).
func (r *Reader) fast(line []byte, w *wire) bool {
	if len(line) < 2 || line[0] != '{' || line[len(line)-1] != '}' {
		return false
	}
	var seen uint8
	i := 1
	if line[i] == '}' {
		return i == len(line)-1
	}
	for {
		// "name":
		if line[i] != '"' {
			return false
		}
		j := i + 1
		for j < len(line) && line[j] != '"' {
			j++
		}
		if j+1 >= len(line) || line[j+1] != ':' {
			return false
		}
		name := line[i+1 : j]
		i = j + 2
		if i >= len(line) {
			return false
		}
		var bit uint8
		var n int
		switch string(name) {
		case "t":
			bit = 1
			v, m, ok := scanInt(line[i:])
			if !ok {
				return false
			}
			w.T, n = v, m
		case "proc", "type", "f", "key":
			s, m, ok := scanString(line[i:])
			if !ok {
				return false
			}
			n = m
			switch string(name) {
			case "proc":
				bit, w.Proc = 2, r.intern(s)
			case "type":
				bit = 4
				switch string(s) {
				case "invoke":
					w.Type = string(Invoke)
				case "ok":
					w.Type = string(OK)
				case "fail":
					w.Type = string(Fail)
				case "info":
					w.Type = string(Info)
				default:
					w.Type = string(s)
				}
			case "f":
				bit, w.F = 8, r.intern(s)
			case "key":
				bit, w.Key = 16, r.intern(s)
			}
		case "token":
			bit = 32
			v, m, ok := scanInt(line[i:])
			if !ok {
				return false
			}
			r.tok, n = v, m
			w.Token = &r.tok // read by parse before the next line
		case "value":
			bit = 64
			m, ok := scanScalar(line[i:])
			if !ok {
				return false
			}
			w.Value, n = json.RawMessage(line[i:i+m]), m
		default:
			return false
		}
		if seen&bit != 0 {
			return false // a repeated field: encoding/json's rules apply
		}
		seen |= bit
		i += n
		switch {
		case i == len(line)-1: // the closing brace
			return true
		case line[i] == ',' && i+1 < len(line)-1:
			i++
		default:
			return false
		}
	}
}

// intern returns b as a string, shared with earlier equal strings.
func (r *Reader) intern(b []byte) string {
	if s, ok := r.strs[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(r.strs) < maxInterned {
		r.strs[s] = s
	}
	return s
}

// scanInt reads a JSON integer that fits in an int64: -?(0|[1-9][0-9]*),
// at most 18 digits, not followed by a fraction or exponent.
func scanInt(b []byte) (v int64, n int, ok bool) {
	neg := false
	if n < len(b) && b[n] == '-' {
		neg = true
		n++
	}
	start := n
	for n < len(b) && b[n] >= '0' && b[n] <= '9' {
		v = v*10 + int64(b[n]-'0')
		n++
	}
	digits := n - start
	if digits == 0 || digits > 18 || (digits > 1 && b[start] == '0') {
		return 0, 0, false
	}
	if n < len(b) && (b[n] == '.' || b[n] == 'e' || b[n] == 'E') {
		return 0, 0, false
	}
	if neg {
		v = -v
	}
	return v, n, true
}

// scanString reads a JSON string of printable ASCII without escapes and
// returns its contents and the length consumed.
func scanString(b []byte) (s []byte, n int, ok bool) {
	if len(b) == 0 || b[0] != '"' {
		return nil, 0, false
	}
	for n = 1; n < len(b); n++ {
		c := b[n]
		switch {
		case c == '"':
			return b[1:n], n + 1, true
		case c == '\\' || c < 0x20 || c >= 0x7f:
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// scanScalar reads a value that is a plain string or an integer (not null,
// which encoding/json treats apart) and returns its length.
func scanScalar(b []byte) (n int, ok bool) {
	if len(b) > 0 && b[0] == '"' {
		_, n, ok = scanString(b)
		return n, ok
	}
	_, n, ok = scanInt(b)
	return n, ok
}
