package locks

import (
	"fmt"
	"os"
	"time"
)

// Options are the settings every backend honours where its design allows.
// Backends start from their seed's defaults and apply Option values on top.
type Options struct {
	// TTL is how long a grant lasts without renewal (Locker's lock_for).
	TTL time.Duration
	// RenewEvery is the time between renewals made by Run (Locker's
	// renew_every). It must be shorter than TTL.
	RenewEvery time.Duration
	// PollInterval is how often a blocking Acquire retries, for backends
	// that poll (Locker: 0.5 s; seed 004: 1 s).
	PollInterval time.Duration
	// WaitTimeout bounds a blocking Acquire; 0 waits until ctx ends.
	WaitTimeout time.Duration
	// Owner identifies the holder (default: host name and pid).
	Owner string
	// Clock is the client's clock (default SystemClock).
	Clock Clock
}

// Option changes Options.
type Option func(*Options)

// WithTTL sets the lease duration.
func WithTTL(d time.Duration) Option { return func(o *Options) { o.TTL = d } }

// WithRenewEvery sets the renewal interval used by Run.
func WithRenewEvery(d time.Duration) Option { return func(o *Options) { o.RenewEvery = d } }

// WithPollInterval sets how often a blocking Acquire retries.
func WithPollInterval(d time.Duration) Option { return func(o *Options) { o.PollInterval = d } }

// WithWaitTimeout bounds a blocking Acquire.
func WithWaitTimeout(d time.Duration) Option { return func(o *Options) { o.WaitTimeout = d } }

// WithOwner sets the holder's identity.
func WithOwner(owner string) Option { return func(o *Options) { o.Owner = owner } }

// WithClock sets the client's clock.
func WithClock(c Clock) Option { return func(o *Options) { o.Clock = c } }

// Apply returns defaults with opts applied, the owner and clock filled in,
// and an error if the result is inconsistent.
func Apply(defaults Options, opts ...Option) (Options, error) {
	o := defaults
	for _, opt := range opts {
		opt(&o)
	}
	if o.Owner == "" {
		o.Owner = DefaultOwner()
	}
	if o.Clock == nil {
		o.Clock = SystemClock{}
	}
	switch {
	case o.TTL <= 0:
		return o, fmt.Errorf("locks: TTL must be positive, got %v", o.TTL)
	case o.RenewEvery <= 0 || o.RenewEvery >= o.TTL:
		return o, fmt.Errorf("locks: RenewEvery must be positive and shorter than TTL (%v), got %v", o.TTL, o.RenewEvery)
	case o.PollInterval < 0:
		return o, fmt.Errorf("locks: PollInterval must not be negative, got %v", o.PollInterval)
	case o.WaitTimeout < 0:
		return o, fmt.Errorf("locks: WaitTimeout must not be negative, got %v", o.WaitTimeout)
	}
	return o, nil
}

// DefaultOwner is "hostname:pid".
func DefaultOwner() string {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	return fmt.Sprintf("%s:%d", host, os.Getpid())
}
