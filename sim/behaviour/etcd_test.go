package behaviour_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/locksim/locksim/cluster"
	"github.com/locksim/locksim/faults"
	"github.com/locksim/locksim/locks"
	lockEtcd "github.com/locksim/locksim/locks/etcd"
	"github.com/locksim/locksim/sim/behaviour"
)

// TestMain lets this test binary be re-executed as an etcd member (package
// cluster starts members as processes of the running program).
func TestMain(m *testing.M) {
	cluster.MaybeRunEtcdMember()
	os.Exit(m.Run())
}

// realEtcd is a real three-member etcd cluster from cluster/, with clients
// made as the harness makes them (harness/backend_client.go), each through
// its own toxiproxy link to every member.
type realEtcd struct {
	t       *testing.T
	cl      *cluster.Etcd
	net     *faults.Network
	ctx     context.Context // ends with the case
	start   time.Time
	clients []*clientv3.Client
}

func (e *realEtcd) Logf(format string, args ...any) { e.t.Logf(format, args...) }

func (e *realEtcd) Sleep(d time.Duration)  { time.Sleep(d) }
func (e *realEtcd) Elapsed() time.Duration { return time.Since(e.start) }

func clientName(c int) string { return fmt.Sprintf("c%d", c) }

func (e *realEtcd) client(c int) (*clientv3.Client, error) {
	for len(e.clients) <= c {
		e.clients = append(e.clients, nil)
	}
	if e.clients[c] != nil {
		return e.clients[c], nil
	}
	var urls []string
	for _, m := range e.cl.Members() {
		u, err := url.Parse(m.ClientURL())
		if err != nil {
			return nil, err
		}
		l, err := e.net.AddLink(clientName(c), m.Name(), u.Host)
		if err != nil {
			return nil, err
		}
		urls = append(urls, "http://"+l.Addr())
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: urls, DialTimeout: 2 * time.Second,
		DialKeepAliveTime: 10 * time.Second, DialKeepAliveTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, err
	}
	e.clients[c] = cli
	return cli, nil
}

// rpc is the context of one request: bounded, so that a case that waits on
// a cut link fails instead of hanging.
func (e *realEtcd) rpc() (context.Context, context.CancelFunc) {
	return context.WithTimeout(e.ctx, 5*time.Second)
}

func (e *realEtcd) Grant(c int, ttl int64) (int64, int64, error) {
	cli, err := e.client(c)
	if err != nil {
		return 0, 0, err
	}
	ctx, cancel := e.rpc()
	defer cancel()
	resp, err := cli.Grant(ctx, ttl)
	if err != nil {
		return 0, 0, err
	}
	return int64(resp.ID), resp.TTL, nil
}

func (e *realEtcd) KeepAliveOnce(c int, id int64) (int64, error) {
	cli, err := e.client(c)
	if err != nil {
		return 0, err
	}
	ctx, cancel := e.rpc()
	defer cancel()
	resp, err := cli.KeepAliveOnce(ctx, clientv3.LeaseID(id))
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return resp.TTL, nil
}

func (e *realEtcd) Revoke(c int, id int64) error {
	cli, err := e.client(c)
	if err != nil {
		return err
	}
	ctx, cancel := e.rpc()
	defer cancel()
	_, err = cli.Revoke(ctx, clientv3.LeaseID(id))
	return err
}

func (e *realEtcd) TimeToLive(c int, id int64) (int64, error) {
	cli, err := e.client(c)
	if err != nil {
		return 0, err
	}
	ctx, cancel := e.rpc()
	defer cancel()
	resp, err := cli.TimeToLive(ctx, clientv3.LeaseID(id))
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return -1, nil
	}
	if err != nil {
		return 0, err
	}
	return resp.TTL, nil
}

func lockPrefix(name string) string { return lockEtcd.Prefix + name + "/" }

func (e *realEtcd) Put(c int, name string, id int64) (int64, error) {
	cli, err := e.client(c)
	if err != nil {
		return 0, err
	}
	return e.put(cli, name, id)
}

func (e *realEtcd) put(cli *clientv3.Client, name string, id int64) (int64, error) {
	ctx, cancel := e.rpc()
	defer cancel()
	resp, err := cli.Put(ctx, fmt.Sprintf("%s%x", lockPrefix(name), id), "", clientv3.WithLease(clientv3.LeaseID(id)))
	if err != nil {
		return 0, err
	}
	return resp.Header.Revision, nil
}

func (e *realEtcd) Queue(c int, name string) ([]int64, error) {
	cli, err := e.client(c)
	if err != nil {
		return nil, err
	}
	return e.queue(cli, name)
}

func (e *realEtcd) queue(cli *clientv3.Client, name string) ([]int64, error) {
	ctx, cancel := e.rpc()
	defer cancel()
	resp, err := cli.Get(ctx, lockPrefix(name), clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
	if err != nil {
		return nil, err
	}
	var revs []int64
	for _, kv := range resp.Kvs {
		revs = append(revs, kv.CreateRevision)
	}
	return revs, nil
}

// realEtcdCall is a request run on its own goroutine.
type realEtcdCall struct {
	mu   sync.Mutex
	at   time.Duration
	done bool
	err  error
	revs []int64
}

func (e *realEtcd) async(op func() ([]int64, error)) *realEtcdCall {
	call := &realEtcdCall{}
	go func() {
		revs, err := op()
		call.mu.Lock()
		defer call.mu.Unlock()
		call.at, call.done, call.err, call.revs = e.Elapsed(), true, err, revs
	}()
	return call
}

func (c *realEtcdCall) Result() (time.Duration, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.at, c.done, c.err
}

func (c *realEtcdCall) Revs() []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.revs
}

func (e *realEtcd) PutAsync(c int, name string, id int64) behaviour.EtcdCall {
	cli, err := e.client(c) // here, not on the goroutine
	if err != nil {
		return &realEtcdCall{done: true, err: err}
	}
	return e.async(func() ([]int64, error) {
		_, err := e.put(cli, name, id)
		return nil, err
	})
}

func (e *realEtcd) QueueAsync(c int, name string) behaviour.EtcdCall {
	cli, err := e.client(c)
	if err != nil {
		return &realEtcdCall{done: true, err: err}
	}
	return e.async(func() ([]int64, error) { return e.queue(cli, name) })
}

func (e *realEtcd) Session(c int, id int64) (behaviour.EtcdSession, error) {
	cli, err := e.client(c)
	if err != nil {
		return nil, err
	}
	// As locks/etcd: the lease granted first, the session on it.
	s, err := concurrency.NewSession(cli, concurrency.WithLease(clientv3.LeaseID(id)), concurrency.WithTTL(1))
	if err != nil {
		return nil, err
	}
	rs := &realEtcdSession{e: e, cli: cli, s: s}
	go func() {
		<-s.Done()
		rs.mu.Lock()
		rs.doneAt, rs.done = e.Elapsed(), true
		rs.mu.Unlock()
	}()
	return rs, nil
}

func (e *realEtcd) Cut(c int) error {
	for _, m := range e.cl.Members() {
		e.net.Cut(clientName(c), m.Name(), faults.Both)
	}
	return nil
}

func (e *realEtcd) Heal() error {
	e.net.Heal()
	return nil
}

func (e *realEtcd) KillAll() error {
	var errs []error
	for _, m := range e.cl.Members() {
		errs = append(errs, m.Kill())
	}
	return errors.Join(errs...)
}

func (e *realEtcd) Slow(c int, d time.Duration) error {
	for _, m := range e.cl.Members() {
		if err := e.net.Slow(clientName(c), m.Name(), d, 0); err != nil {
			return err
		}
	}
	return nil
}

// KillLeader asks every member for its status (directly, not through a
// client's links) and kills the one that leads.
func (e *realEtcd) KillLeader() error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: e.cl.Endpoints(), DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	for _, m := range e.cl.Members() {
		ctx, cancel := e.rpc()
		st, err := cli.Status(ctx, m.ClientURL())
		cancel()
		if err != nil {
			return err
		}
		if st.Header.MemberId == st.Leader {
			return m.Kill()
		}
	}
	return errors.New("no member leads")
}

type realEtcdSession struct {
	e   *realEtcd
	cli *clientv3.Client
	s   *concurrency.Session

	mu     sync.Mutex
	done   bool
	doneAt time.Duration
	mutex  *concurrency.Mutex
}

func (s *realEtcdSession) Done() (time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.doneAt, s.done
}

func (s *realEtcdSession) Lock(name string) behaviour.EtcdLock {
	m := concurrency.NewMutex(s.s, lockEtcd.Prefix+name)
	s.mu.Lock()
	s.mutex = m
	s.mu.Unlock()
	l := &realEtcdLock{}
	go func() {
		err := m.Lock(s.e.ctx)
		l.mu.Lock()
		defer l.mu.Unlock()
		l.done, l.err = true, err
		if err == nil {
			own := m.IsOwner() // locks/etcd's Token
			l.rev = own.GetCompare().GetCreateRevision()
		}
	}()
	return l
}

// Release is locks/etcd's Lease.Release: Unlock, Orphan, Revoke.
func (s *realEtcdSession) Release() error {
	s.mu.Lock()
	m := s.mutex
	s.mu.Unlock()
	ctx, cancel := s.e.rpc()
	defer cancel()
	var unlockErr error
	if m != nil {
		unlockErr = m.Unlock(ctx)
	}
	s.s.Orphan()
	_, err := s.cli.Revoke(ctx, s.s.Lease())
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return fmt.Errorf("release: %w", locks.ErrLockLost)
	}
	return errors.Join(unlockErr, err)
}

type realEtcdLock struct {
	mu   sync.Mutex
	rev  int64
	done bool
	err  error
}

func (l *realEtcdLock) Held() (int64, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rev, l.done, l.err
}

// The behaviour cases on a real etcd cluster, each on a fresh one.
func TestEtcdReal(t *testing.T) {
	for _, c := range behaviour.EtcdCases {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			cl, err := cluster.StartEtcd(cluster.EtcdConfig{Members: 3})
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			n := faults.NewNetwork()
			defer n.Close()
			ctx, cancel := context.WithCancel(context.Background())
			e := &realEtcd{t: t, cl: cl, net: n, ctx: ctx, start: time.Now()}
			defer func() {
				cancel()
				for _, cli := range e.clients {
					if cli != nil {
						cli.Close()
					}
				}
			}()
			if err := c.Run(e); err != nil {
				t.Error(err)
			}
		})
	}
}
