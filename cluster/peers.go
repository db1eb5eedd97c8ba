package cluster

import (
	"errors"
	"fmt"

	"github.com/locksim/locksim/netns"
)

// PeerNetwork carries the traffic between the servers of a cluster when
// each runs in a network namespace of its own (see package netns).
// faults.Network is one: it gives every ordered pair of servers a link of
// its own that can be cut or slowed.
type PeerNetwork interface {
	// ConnectPeers is called once the servers' namespaces and ports are
	// known and before any of them starts: afterwards, inside each host's
	// namespace, every other host's ports on 127.0.0.1 must lead to that
	// host.
	ConnectPeers(hosts []netns.Host) error
}

// peerPlacement is where the servers of one cluster run: a namespace per
// server, with each server's client port forwarded from the same port of
// 127.0.0.1 in locksim's own namespace, so that clients and locksim reach
// it at the address they would without namespaces.
type peerPlacement struct {
	spaces []*netns.Namespace
	fwds   []*netns.Forwarder
}

// placePeers makes the namespaces for hosts (Name, TCP and UDP set; NS is
// filled in), forwards each server's client port into its namespace, and
// connects the hosts through net.
func placePeers(net PeerNetwork, hosts []netns.Host, clientPorts []int) (*peerPlacement, error) {
	p := &peerPlacement{}
	for i := range hosts {
		ns, err := netns.New(hosts[i].Name)
		if err != nil {
			p.close()
			return nil, fmt.Errorf("cluster: %w", err)
		}
		p.spaces = append(p.spaces, ns)
		hosts[i].NS = ns
		addr := fmt.Sprintf("127.0.0.1:%d", clientPorts[i])
		f, err := netns.Forward(nil, addr, ns, addr)
		if err != nil {
			p.close()
			return nil, fmt.Errorf("cluster: %s client port: %w", hosts[i].Name, err)
		}
		p.fwds = append(p.fwds, f)
	}
	if err := net.ConnectPeers(hosts); err != nil {
		p.close()
		return nil, fmt.Errorf("cluster: peers: %w", err)
	}
	return p, nil
}

// close stops the forwarders and lets go of the namespaces; call it after
// the servers are dead. A nil placement is fine.
func (p *peerPlacement) close() error {
	if p == nil {
		return nil
	}
	var errs []error
	for _, f := range p.fwds {
		errs = append(errs, f.Close())
	}
	for _, ns := range p.spaces {
		errs = append(errs, ns.Close())
	}
	p.fwds, p.spaces = nil, nil
	return errors.Join(errs...)
}

// space is server i's namespace, or nil without placement.
func (p *peerPlacement) space(i int) *netns.Namespace {
	if p == nil {
		return nil
	}
	return p.spaces[i]
}
