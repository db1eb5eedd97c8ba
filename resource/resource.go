// Package resource is the fenced resource of a run: a small service that
// clients read and write from inside their critical section, with their
// fencing token. Its Mode says what it checks:
//
//   - ModeNone accepts everything, which measures what an unfenced
//     resource suffers;
//   - ModeWrites rejects a write whose token is lower than the highest it
//     has accepted for that key; reads are not checked;
//   - ModeAll remembers the highest token of any request it served for a
//     key, reads included, and refuses a request with a lower one (or with
//     none): Kleppmann's fenced storage and Chubby's sequencers, which make
//     read-modify-write safe.
//
// Every decision on a write is recorded as an accept or reject event
// (DESIGN.md, "History"); a refused read is not an event of the resource
// (the reader's read fails).
//
// The state is one integer per key: the counter workload reads it and
// writes it plus one.
package resource

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/locksim/locksim/history"
)

// Recorder receives the resource's events; Now is the run's clock in ns.
type Recorder interface {
	Record(e *history.Event)
	Now() int64
}

// Mode is what a Store checks. Its values are those of the scenario
// field workload.fencing.
type Mode string

// The modes.
const (
	ModeNone   Mode = "none"   // accept everything
	ModeWrites Mode = "writes" // writes with a stale token are rejected
	ModeAll    Mode = "all"    // any request with a stale token is rejected
)

// Store is the resource's state and its fencing rule, without transport.
type Store struct {
	mode Mode
	rec  Recorder

	mu   sync.Mutex
	keys map[string]*cell
}

type cell struct {
	value    int64
	maxToken int64
	hasToken bool
}

// NewStore returns an empty store that checks what mode says and records
// its decisions with rec. "" is ModeNone; a mode the store does not know
// is an error.
func NewStore(mode Mode, rec Recorder) (*Store, error) {
	switch mode {
	case "":
		mode = ModeNone
	case ModeNone, ModeWrites, ModeAll:
	default:
		return nil, fmt.Errorf("resource: unknown mode %q (want %s, %s or %s)", mode, ModeNone, ModeWrites, ModeAll)
	}
	return &Store{mode: mode, rec: rec, keys: make(map[string]*cell)}, nil
}

// ErrStaleToken is returned when fencing rejects a request: its token is
// lower than one the store already accepted (ModeAll: or served, or the
// request carried none).
var ErrStaleToken = errors.New("resource: request rejected: token lower than one already accepted")

// Mode is what the store checks.
func (s *Store) Mode() Mode { return s.mode }

// stale reports whether a request with token (hasToken false: none) is
// refused on c.
func (s *Store) stale(c *cell, token int64, hasToken bool) bool {
	switch s.mode {
	case ModeWrites:
		return hasToken && c.hasToken && token < c.maxToken
	case ModeAll:
		return !hasToken || (c.hasToken && token < c.maxToken)
	}
	return false
}

// seen raises c's highest token to token.
func seen(c *cell, token int64, hasToken bool) {
	if hasToken && (!c.hasToken || token > c.maxToken) {
		c.maxToken, c.hasToken = token, true
	}
}

func (s *Store) cell(key string) *cell {
	c := s.keys[key]
	if c == nil {
		c = &cell{}
		s.keys[key] = c
	}
	return c
}

// Read returns the value of key (0 if never written). In ModeAll a read
// is a request like a write: one with a token lower than the highest the
// store served for key, or with none, returns ErrStaleToken, and a higher
// one becomes the highest (so that a write with a lower token is refused
// after it). The other modes ignore the token.
func (s *Store) Read(key string, token int64, hasToken bool) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.keys[key]
	if s.mode != ModeAll {
		if c == nil {
			return 0, nil
		}
		return c.value, nil
	}
	c = s.cell(key)
	if s.stale(c, token, hasToken) {
		return 0, ErrStaleToken
	}
	seen(c, token, hasToken)
	return c.value, nil
}

// Write sets key to value if the fencing rule allows token, recording an
// accept or reject event. hasToken false means the writer has no token:
// such writes are accepted, except in ModeAll.
func (s *Store) Write(key string, token int64, hasToken bool, value int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.cell(key)
	e := history.Event{T: s.rec.Now(), Proc: history.ProcResource, Type: history.Info, Key: key,
		Token: token, HasToken: hasToken, Value: strconv.AppendInt(nil, value, 10)}
	if s.stale(c, token, hasToken) {
		e.F = history.FReject
		s.rec.Record(&e)
		return ErrStaleToken
	}
	c.value = value
	seen(c, token, hasToken)
	e.F = history.FAccept
	s.rec.Record(&e)
	return nil
}

// Server serves a Store over HTTP on 127.0.0.1.
type Server struct {
	store *Store
	ln    net.Listener
	srv   *http.Server
	done  chan struct{}
}

// WriteRequest is the body of POST /write.
type WriteRequest struct {
	Key   string `json:"key"`
	Token *int64 `json:"token,omitempty"`
	Value int64  `json:"value"`
}

// ReadResponse is the body answered by GET /read.
type ReadResponse struct {
	Value int64 `json:"value"`
}

// Serve starts serving store on a free port of 127.0.0.1.
func Serve(store *Store) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{store: store, ln: ln, done: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /read", s.read)
	mux.HandleFunc("POST /write", s.write)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

// URL is the server's base URL.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Close stops the server.
func (s *Server) Close() error {
	err := s.srv.Close()
	<-s.done
	return err
}

func (s *Server) read(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var tok int64
	hasTok := q.Has("token")
	if hasTok {
		var err error
		if tok, err = strconv.ParseInt(q.Get("token"), 10, 64); err != nil {
			http.Error(w, "bad request: token: "+err.Error(), http.StatusBadRequest)
			return
		}
	}
	v, err := s.store.Read(q.Get("key"), tok, hasTok)
	if err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(ReadResponse{Value: v})
}

func (s *Server) write(w http.ResponseWriter, r *http.Request) {
	var req WriteRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil {
		http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
		return
	}
	var tok int64
	if req.Token != nil {
		tok = *req.Token
	}
	if err := s.store.Write(req.Key, tok, req.Token != nil, req.Value); err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// Client talks to a Server.
type Client struct {
	base string
	http *http.Client
}

// ClientTimeout bounds one read or write of a Client: past it the
// outcome is unknown. The simulator bounds its clients' reads and writes
// (and their guarded operations, as harness/ does) by the same.
const ClientTimeout = 5 * time.Second

// NewClient returns a client of the server at baseURL.
func NewClient(baseURL string) *Client {
	return &Client{base: baseURL, http: &http.Client{Timeout: ClientTimeout}}
}

// Read returns the value of key, reading with token (nil: no token). It
// returns ErrStaleToken if the resource refused the read (ModeAll).
func (c *Client) Read(key string, token *int64) (int64, error) {
	u := c.base + "/read?key=" + url.QueryEscape(key)
	if token != nil {
		u += "&token=" + strconv.FormatInt(*token, 10)
	}
	resp, err := c.http.Get(u)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusConflict:
		return 0, ErrStaleToken
	default:
		return 0, fmt.Errorf("resource: read: %s", resp.Status)
	}
	var rr ReadResponse
	if err := json.NewDecoder(resp.Body).Decode(&rr); err != nil {
		return 0, err
	}
	return rr.Value, nil
}

// Write writes value to key with token (nil: no token). It returns
// ErrStaleToken if the resource rejected it.
func (c *Client) Write(key string, token *int64, value int64) error {
	body, _ := json.Marshal(WriteRequest{Key: key, Token: token, Value: value})
	resp, err := c.http.Post(c.base+"/write", "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNoContent:
		return nil
	case http.StatusConflict:
		return ErrStaleToken
	}
	return fmt.Errorf("resource: write: %s", resp.Status)
}
