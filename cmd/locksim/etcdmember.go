package main

import (
	"fmt"
	"io"

	"github.com/locksim/locksim/cluster"
)

// The etcd-member subcommand is how cluster.StartEtcd runs each etcd member
// in its own process: it re-executes locksim with this subcommand and the
// member's configuration in cluster.EtcdMemberEnv.
func init() {
	commands[cluster.EtcdMemberCommand] = command{
		summary: "run one etcd member (internal: started by locksim itself)",
		hidden:  true,
		run: func(args []string, stdout, stderr io.Writer) int {
			cluster.MaybeRunEtcdMember() // exits if this is a member
			fmt.Fprintf(stderr, "locksim %s: internal command, started by locksim with %s set\n",
				cluster.EtcdMemberCommand, cluster.EtcdMemberEnv)
			return exitUsage
		},
	}
}
