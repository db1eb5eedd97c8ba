// Package resource is the fenced resource of a run: a small service that
// clients write to from inside their critical section, with their fencing
// token. With fencing on it rejects a write whose token is lower than the
// highest it has accepted for that key; every decision is recorded as an
// accept or reject event (DESIGN.md, "History"). With fencing off it
// accepts everything, which measures what an unfenced resource suffers.
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

// Store is the resource's state and its fencing rule, without transport.
type Store struct {
	fencing bool
	rec     Recorder

	mu   sync.Mutex
	keys map[string]*cell
}

type cell struct {
	value    int64
	maxToken int64
	hasToken bool
}

// NewStore returns an empty store that records its decisions with rec.
func NewStore(fencing bool, rec Recorder) *Store {
	return &Store{fencing: fencing, rec: rec, keys: make(map[string]*cell)}
}

// ErrStaleToken is returned by Write when fencing rejects a write.
var ErrStaleToken = errors.New("resource: write rejected: token lower than one already accepted")

// Read returns the value of key (0 if never written).
func (s *Store) Read(key string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.keys[key]; c != nil {
		return c.value
	}
	return 0
}

// Write sets key to value if the fencing rule allows token, recording an
// accept or reject event. hasToken false means the writer has no token:
// such writes are always accepted.
func (s *Store) Write(key string, token int64, hasToken bool, value int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.keys[key]
	if c == nil {
		c = &cell{}
		s.keys[key] = c
	}
	e := history.Event{T: s.rec.Now(), Proc: history.ProcResource, Type: history.Info, Key: key,
		Token: token, HasToken: hasToken, Value: strconv.AppendInt(nil, value, 10)}
	if s.fencing && hasToken && c.hasToken && token < c.maxToken {
		e.F = history.FReject
		s.rec.Record(&e)
		return ErrStaleToken
	}
	c.value = value
	if hasToken && (!c.hasToken || token > c.maxToken) {
		c.maxToken, c.hasToken = token, true
	}
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
	key := r.URL.Query().Get("key")
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(ReadResponse{Value: s.store.Read(key)})
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

// NewClient returns a client of the server at baseURL.
func NewClient(baseURL string) *Client {
	return &Client{base: baseURL, http: &http.Client{Timeout: 5 * time.Second}}
}

// Read returns the value of key.
func (c *Client) Read(key string) (int64, error) {
	resp, err := c.http.Get(c.base + "/read?key=" + url.QueryEscape(key))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
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
