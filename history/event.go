package history

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// Type is an event's type: invoke, then one of ok, fail or info; or a lone
// info for a notification.
type Type string

// The event types.
const (
	Invoke Type = "invoke" // an operation starts
	OK     Type = "ok"     // it certainly happened
	Fail   Type = "fail"   // it certainly did not happen
	Info   Type = "info"   // outcome unknown; or, alone, a notification
)

// Valid reports whether t is one of the four types.
func (t Type) Valid() bool {
	switch t {
	case Invoke, OK, Fail, Info:
		return true
	}
	return false
}

// Operation and notification names used by locksim's producers. Faults use
// their own names (pause, partition, ...).
const (
	FAcquire = "acquire"
	FRelease = "release"
	FRenew   = "renew"
	FLost    = "lost"
	FRead    = "read"
	FWrite   = "write"
	FAccept  = "accept"
	FReject  = "reject"
	// FInsert inserts an item into a distinct list (seed 004's second
	// mode): ok inserted, fail refused as already present.
	FInsert = "insert"
)

// Well-known procs.
const (
	ProcNemesis  = "nemesis"
	ProcResource = "resource"
)

// Event is one line of a history.
type Event struct {
	T        int64           // ns from the start of the run, on the run's one clock
	Proc     string          // c1…, nemesis, resource
	Type     Type            // invoke, ok, fail, info
	F        string          // acquire, release, renew, lost, read, write, accept, reject, fault names
	Key      string          // lock key; "" if none
	Token    int64           // fencing token, if HasToken
	HasToken bool            // whether the event carries a token
	Value    json.RawMessage // argument or result, any JSON; nil if absent
	Line     int             // 1-based line in the file it was read from; 0 if not read
}

// IsClientOp reports whether f is an operation that clients invoke and
// complete (acquire, release, renew, read, write, insert): a lone info of such an
// operation is not a notification.
func IsClientOp(f string) bool {
	switch f {
	case FAcquire, FRelease, FRenew, FRead, FWrite, FInsert:
		return true
	}
	return false
}

// AppendJSON appends e as one JSON object (without a newline) to dst.
// Fields: t, proc, type, f, then key, token and value when present.
func (e *Event) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"t":`...)
	dst = strconv.AppendInt(dst, e.T, 10)
	dst = append(dst, `,"proc":`...)
	dst = appendString(dst, e.Proc)
	dst = append(dst, `,"type":`...)
	dst = appendString(dst, string(e.Type))
	dst = append(dst, `,"f":`...)
	dst = appendString(dst, e.F)
	if e.Key != "" {
		dst = append(dst, `,"key":`...)
		dst = appendString(dst, e.Key)
	}
	if e.HasToken {
		dst = append(dst, `,"token":`...)
		dst = strconv.AppendInt(dst, e.Token, 10)
	}
	if len(e.Value) > 0 {
		dst = append(dst, `,"value":`...)
		dst = append(dst, e.Value...)
	}
	return append(dst, '}')
}

// MarshalJSON implements json.Marshaler with AppendJSON's format.
func (e Event) MarshalJSON() ([]byte, error) {
	if len(e.Value) > 0 && !json.Valid(e.Value) {
		return nil, &json.UnsupportedValueError{Str: "history: event value is not valid JSON"}
	}
	return e.AppendJSON(nil), nil
}

const hex = "0123456789abcdef"

// appendString appends s as a JSON string.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
