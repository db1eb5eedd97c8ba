package faults

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"

	"github.com/locksim/locksim/netns"
)

// Network is the set of proxies of one run: every link that locksim can cut
// or slow runs through one of them. It embeds toxiproxy's server as a
// library (no API port is opened); every proxy listens on 127.0.0.1.
//
// A link carries the connections that From opens to To, so every link is
// exactly one ordered pair. For client→server links locksim gives each
// client its own proxy per server. Servers find their peers through
// addresses they advertise to all (etcd's peer URLs, Consul's server
// addresses), so server↔server links need each server in a network
// namespace of its own, where its peers' addresses lead to its own links to
// them: see ConnectPeers.
type Network struct {
	server *toxiproxy.ApiServer

	mu     sync.Mutex
	links  []*Link
	cut    map[pair]int   // how many cuts are in force, by ordered pair of endpoints (data from a to b)
	slow   map[pair]delay // what is slowed, for UDP relays
	fwds   []*netns.Forwarder
	relays []*udpRelay
}

type delay struct{ mean, jitter time.Duration }

// Link is one proxy from From to To.
type Link struct {
	From, To string
	proxy    *toxiproxy.Proxy
	gate     *cutGate
}

// Direction says which way traffic is cut between two endpoints.
type Direction int

// The directions, as bits: cutting both is cutting each.
const (
	Forward  Direction = 1 << iota // from a to b
	Backward                       // from b to a
	Both     = Forward | Backward
)

type pair struct{ a, b string }

// NewNetwork returns an empty network.
func NewNetwork() *Network {
	logger := zerolog.New(io.Discard)
	return &Network{
		server: toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), logger),
		cut:    make(map[pair]int),
		slow:   make(map[pair]delay),
	}
}

// AddLink starts a proxy on a free port of 127.0.0.1 that forwards to
// upstream, for the connections from opens to to.
func (n *Network) AddLink(from, to, upstream string) (*Link, error) {
	host, _, err := net.SplitHostPort(upstream)
	if err != nil || (host != "127.0.0.1" && host != "::1" && host != "localhost") {
		return nil, fmt.Errorf("faults: upstream %q is not a loopback address", upstream)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	name := fmt.Sprintf("%s->%s#%d", from, to, len(n.links))
	p := toxiproxy.NewProxy(n.server, name, "127.0.0.1:0", upstream)
	if err := n.server.Collection.Add(p, false); err != nil {
		return nil, fmt.Errorf("faults: proxy %s: %w", name, err)
	}
	l := &Link{From: from, To: to, proxy: p, gate: newCutGate()}
	for _, stream := range []string{"upstream", "downstream"} {
		js := fmt.Sprintf(`{"name":"cut-%s","type":%q,"stream":%q}`, stream, cutToxicType, stream)
		w, err := p.Toxics.AddToxicJson(strings.NewReader(js))
		if err != nil {
			return nil, fmt.Errorf("faults: proxy %s: %w", name, err)
		}
		w.Toxic.(*cutToxic).gate, w.Toxic.(*cutToxic).upstream = l.gate, stream == "upstream"
	}
	if err := p.Start(); err != nil {
		return nil, fmt.Errorf("faults: proxy %s: %w", name, err)
	}
	n.links = append(n.links, l)
	n.applyLocked(l)
	return l, nil
}

// Addr is the address clients of this link dial instead of the upstream.
func (l *Link) Addr() string { return l.proxy.Listen }

// Links returns every link.
func (n *Network) Links() []*Link {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.links)
}

// Cut drops traffic between a and b in direction dir (Forward: from a to
// b). Data sent into a cut link is lost, as in a real partition; open
// connections hang rather than close. Cuts add up: a direction cut twice
// stays cut until Uncut twice (or Heal).
func (n *Network) Cut(a, b string, dir Direction) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if dir&Forward != 0 {
		n.cut[pair{a, b}]++
	}
	if dir&Backward != 0 {
		n.cut[pair{b, a}]++
	}
	for _, l := range n.links {
		n.applyLocked(l)
	}
}

// Uncut undoes one Cut(a, b, dir): a fault's end undoes its own cuts and
// leaves those of another fault still in force. A link no cut holds any
// more has its connections reset, as Heal does.
func (n *Network) Uncut(a, b string, dir Direction) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if dir&Forward != 0 {
		n.uncutLocked(pair{a, b})
	}
	if dir&Backward != 0 {
		n.uncutLocked(pair{b, a})
	}
	n.reapplyLocked()
}

// uncutLocked takes one cut off p, if it has one.
func (n *Network) uncutLocked(p pair) {
	switch n.cut[p] {
	case 0:
	case 1:
		delete(n.cut, p)
	default:
		n.cut[p]--
	}
}

// Partition cuts every link between endpoints in different groups, both
// ways. Endpoints in no group keep all their links.
func (n *Network) Partition(groups ...[]string) {
	for i, g := range groups {
		for _, h := range groups[i+1:] {
			for _, a := range g {
				for _, b := range h {
					n.Cut(a, b, Both)
				}
			}
		}
	}
}

// Isolate cuts node off from every other endpoint of the network.
func (n *Network) Isolate(node string) {
	n.mu.Lock()
	others := map[string]bool{}
	for _, l := range n.links {
		for _, e := range []string{l.From, l.To} {
			if e != node {
				others[e] = true
			}
		}
	}
	n.mu.Unlock()
	for o := range others {
		n.Cut(node, o, Both)
	}
}

// Heal removes every cut. Connections that went through a cut link are
// reset, so that both sides reconnect with a clean protocol state (data was
// dropped mid-stream while cut).
func (n *Network) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.cut)
	n.reapplyLocked()
}

// reapplyLocked sets every link's cuts from n.cut; a link that was cut and
// is not any more has its connections reset (see cutToxic).
func (n *Network) reapplyLocked() {
	for _, l := range n.links {
		n.applyLocked(l)
	}
}

// Slow adds latency (with jitter) to every link between a and b, both ways.
func (n *Network) Slow(a, b string, latency, jitter time.Duration) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.slow[pair{a, b}] = delay{latency, jitter}
	n.slow[pair{b, a}] = delay{latency, jitter}
	for _, l := range n.links {
		if !l.between(a, b) {
			continue
		}
		for _, stream := range []string{"upstream", "downstream"} {
			name := "slow-" + stream
			_ = l.proxy.Toxics.RemoveToxic(context.Background(), name)
			js := fmt.Sprintf(`{"name":%q,"type":"latency","stream":%q,"attributes":{"latency":%d,"jitter":%d}}`,
				name, stream, latency.Milliseconds(), jitter.Milliseconds())
			if _, err := l.proxy.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
				return fmt.Errorf("faults: slow %s: %w", l.proxy.Name, err)
			}
		}
	}
	return nil
}

// Unslow removes the latency added by Slow on every link.
func (n *Network) Unslow() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.slow)
	for _, l := range n.links {
		for _, stream := range []string{"upstream", "downstream"} {
			_ = l.proxy.Toxics.RemoveToxic(context.Background(), "slow-"+stream)
		}
	}
}

func (l *Link) between(a, b string) bool {
	return (l.From == a && l.To == b) || (l.From == b && l.To == a)
}

// applyLocked sets l's cuts from n.cut: upstream is data from From to To,
// downstream the replies, which a cut from To to From drops.
func (n *Network) applyLocked(l *Link) {
	l.gate.set(n.cut[pair{l.From, l.To}] != 0, n.cut[pair{l.To, l.From}] != 0)
}

// Close stops every proxy, forwarder and relay.
func (n *Network) Close() {
	n.mu.Lock()
	fwds, relays := n.fwds, n.relays
	n.fwds, n.relays = nil, nil
	n.server.Collection.Clear()
	n.links = nil
	n.mu.Unlock()
	for _, f := range fwds {
		f.Close()
	}
	for _, r := range relays {
		r.close()
	}
}

// IsCut says whether traffic from a to b is cut.
func (n *Network) IsCut(a, b string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cut[pair{a, b}] != 0
}

// IsSlow says whether traffic from a to b is slowed.
func (n *Network) IsSlow(a, b string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.slow[pair{a, b}]
	return ok
}
