package cluster

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// runEtcdMember runs one etcd member from its JSON configuration until the
// server fails, the process gets SIGTERM or SIGINT, or its parent is gone.
// It returns the exit status.
func runEtcdMember(conf string) int {
	var mc etcdMemberConfig
	if err := json.Unmarshal([]byte(conf), &mc); err != nil {
		return exitStatus("?", fmt.Errorf("bad %s: %w", EtcdMemberEnv, err))
	}
	cfg, err := embedConfig(mc)
	if err != nil {
		return exitStatus(mc.Name, err)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return exitStatus(mc.Name, fmt.Errorf("start: %w", err))
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-e.Err():
			e.Close()
			return exitStatus(mc.Name, err)
		case <-sigs:
			// Close for an orderly stop, but never wait long: without a
			// quorum the server may wait for one that is gone.
			done := make(chan struct{})
			go func() { e.Close(); close(done) }()
			select {
			case <-done:
			case <-time.After(3 * time.Second):
			}
			return 0
		case <-tick.C:
			if parentGone(mc.ParentPID) {
				return exitStatus(mc.Name, fmt.Errorf("parent %d is gone", mc.ParentPID))
			}
		}
	}
}

// embedConfig builds the embedded server's configuration.
func embedConfig(mc etcdMemberConfig) (*embed.Config, error) {
	cfg := embed.NewConfig()
	cfg.Name = mc.Name
	cfg.Dir = mc.Dir
	for _, f := range []struct {
		raw string
		dst *[]url.URL
	}{
		{mc.PeerURL, &cfg.ListenPeerUrls},
		{mc.PeerURL, &cfg.AdvertisePeerUrls},
		{mc.ClientURL, &cfg.ListenClientUrls},
		{mc.ClientURL, &cfg.AdvertiseClientUrls},
	} {
		u, err := url.Parse(f.raw)
		if err != nil {
			return nil, fmt.Errorf("bad URL %q: %w", f.raw, err)
		}
		*f.dst = []url.URL{*u}
	}
	cfg.InitialCluster = mc.InitialCluster
	cfg.InitialClusterToken = mc.ClusterToken
	cfg.ClusterState = embed.ClusterStateFlagNew // ignored once the data dir has a WAL (restart)
	cfg.TickMs = mc.TickMs
	cfg.ElectionMs = mc.ElectionMs
	cfg.LogLevel = mc.LogLevel
	cfg.Logger = "zap"
	cfg.LogOutputs = []string{"stderr"}
	cfg.ListenMetricsUrls = nil
	return cfg, nil
}
