package history

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
)

// Error is malformed input: the file, the line and what is wrong.
type Error struct {
	File  string // the file's name as given to the reader
	Line  int    // 1-based line number
	Field string // the field at fault, or "" when the line as a whole is
	Msg   string
}

// Error formats as "file:line: field "f": msg".
func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s:%d: field %q: %s", e.File, e.Line, e.Field, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// Reader reads and validates a history one event at a time, in constant
// memory apart from one open operation per proc.
//
// Beyond the syntax of each line it checks what makes a history well formed:
// the required fields (t, proc, type, f) with the right types; t never going
// backwards; no second invoke by a proc whose previous invoke is still open;
// every ok/fail completion, and every info of a client operation, matching
// an open invoke of the same proc and f.
type Reader struct {
	name  string
	br    *bufio.Reader
	file  *os.File
	line  int
	lastT int64
	open  map[string]openOp
	long  []byte
	// strs interns the strings of the fast path (procs, keys, fs).
	strs map[string]string
	tok  int64
}

type openOp struct {
	f    string
	line int
}

// NewReader reads a history from r; name is used in error messages.
func NewReader(r io.Reader, name string) *Reader {
	return &Reader{name: name, br: bufio.NewReaderSize(r, 256<<10), open: make(map[string]openOp), strs: make(map[string]string)}
}

// Open opens the history file at path. Close it when done.
func Open(path string) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	r := NewReader(f, path)
	r.file = f
	return r, nil
}

// Close closes the file opened by Open; it does nothing for NewReader.
func (r *Reader) Close() error {
	if r.file == nil {
		return nil
	}
	return r.file.Close()
}

// Name is the name used in error messages.
func (r *Reader) Name() string { return r.name }

// wire is the JSON shape of an event as decoded.
type wire struct {
	T     int64           `json:"t"`
	Proc  string          `json:"proc"`
	Type  string          `json:"type"`
	F     string          `json:"f"`
	Key   string          `json:"key"`
	Token *int64          `json:"token"`
	Value json.RawMessage `json:"value"`
}

const missingT = math.MinInt64

// Next returns the next event, io.EOF after the last one, or an *Error for
// malformed input (or the underlying read error). Blank lines are skipped.
func (r *Reader) Next() (Event, error) {
	for {
		line, err := r.readLine()
		if err != nil {
			return Event{}, err
		}
		r.line++
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		return r.parse(line)
	}
}

// readLine returns the next line without its newline; the slice is valid
// until the next call.
func (r *Reader) readLine() ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	if err == nil || (err == io.EOF && len(line) > 0) {
		return line, nil
	}
	if !errors.Is(err, bufio.ErrBufferFull) {
		return nil, err
	}
	r.long = append(r.long[:0], line...)
	for {
		line, err = r.br.ReadSlice('\n')
		r.long = append(r.long, line...)
		if err == nil || err == io.EOF {
			return r.long, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
	}
}

func (r *Reader) errorf(field, format string, args ...any) *Error {
	return &Error{File: r.name, Line: r.line, Field: field, Msg: fmt.Sprintf(format, args...)}
}

func (r *Reader) parse(line []byte) (Event, error) {
	w := wire{T: missingT}
	if !r.fast(line, &w) {
		w = wire{T: missingT}
		if err := json.Unmarshal(line, &w); err != nil {
			return Event{}, r.jsonError(err)
		}
	}
	switch {
	case w.T == missingT:
		return Event{}, r.errorf("t", "missing (want integer nanoseconds)")
	case w.T < 0:
		return Event{}, r.errorf("t", "negative time %d", w.T)
	case w.Proc == "":
		return Event{}, r.errorf("proc", "missing or empty (want a string such as \"c1\")")
	case w.Type == "":
		return Event{}, r.errorf("type", "missing (want invoke, ok, fail or info)")
	case !Type(w.Type).Valid():
		return Event{}, r.errorf("type", "%q is not one of invoke, ok, fail, info", w.Type)
	case w.F == "":
		return Event{}, r.errorf("f", "missing or empty (want acquire, release, write, ...)")
	}
	if w.T < r.lastT {
		return Event{}, r.errorf("t", "time goes backwards: %d after %d", w.T, r.lastT)
	}
	r.lastT = w.T
	e := Event{T: w.T, Proc: w.Proc, Type: Type(w.Type), F: w.F, Key: w.Key, Line: r.line}
	if w.Token != nil {
		e.Token, e.HasToken = *w.Token, true
	}
	if len(w.Value) > 0 && !bytes.Equal(w.Value, []byte("null")) {
		e.Value = append(json.RawMessage(nil), w.Value...)
	}
	if err := r.track(&e); err != nil {
		return Event{}, err
	}
	return e, nil
}

// track checks e against the open invokes and updates them.
func (r *Reader) track(e *Event) error {
	op, isOpen := r.open[e.Proc]
	switch e.Type {
	case Invoke:
		if isOpen {
			return r.errorf("type", "invoke of %q by %s while its %q invoked at line %d is still open", e.F, e.Proc, op.f, op.line)
		}
		r.open[e.Proc] = openOp{f: e.F, line: r.line}
	case OK, Fail:
		if !isOpen || op.f != e.F {
			return r.noInvoke(e, op, isOpen)
		}
		delete(r.open, e.Proc)
	case Info:
		if isOpen && op.f == e.F {
			delete(r.open, e.Proc)
		} else if IsClientOp(e.F) {
			return r.noInvoke(e, op, isOpen)
		}
		// Otherwise a notification: lost, accept, reject, a fault.
	}
	return nil
}

func (r *Reader) noInvoke(e *Event, op openOp, isOpen bool) error {
	if isOpen {
		return r.errorf("f", "%s %q by %s does not match its open invoke of %q at line %d", e.Type, e.F, e.Proc, op.f, op.line)
	}
	return r.errorf("type", "%s %q by %s with no open invoke", e.Type, e.F, e.Proc)
}

// jsonError turns a decoding error into an *Error naming the field.
func (r *Reader) jsonError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			return r.errorf("", "want a JSON object, got %s", te.Value)
		}
		return r.errorf(te.Field, "want %s, got %s", kindName(te.Type.Kind().String()), te.Value)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return r.errorf("", "bad JSON at byte %d: %s", se.Offset, se.Error())
	}
	return r.errorf("", "bad JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
}

func kindName(kind string) string {
	switch kind {
	case "int64", "ptr":
		return "integer"
	case "string":
		return "string"
	}
	return kind
}

// ReadAll reads every event of r.
func ReadAll(r *Reader) ([]Event, error) {
	var events []Event
	for {
		e, err := r.Next()
		if err == io.EOF {
			return events, nil
		}
		if err != nil {
			return events, err
		}
		events = append(events, e)
	}
}
