// Command locksim runs distributed locks on real servers and in a
// simulator, and checks the histories for mutual-exclusion and fencing
// violations.
//
//	locksim check [--json] [--html DIR] FILE...
//
// Exit status: 0 no violation, 1 violations found, 2 bad input or usage,
// 3 no violation but a history (or a run, or a simulated seed) recorded no
// event at all, 130 interrupted.
package main

import (
	"fmt"
	"io"
	"os"
	"sort"
)

// Exit statuses shared by every subcommand.
const (
	exitOK         = 0
	exitViolations = 1
	exitUsage      = 2
	// exitEmpty: no violation, but a history recorded nothing, so nothing
	// was shown safe (a run that never got going, a scenario too short for
	// its clients to start). Violations elsewhere take precedence (1).
	exitEmpty = 3
)

// command is one subcommand. run gets the arguments after the subcommand's
// name and returns the exit status.
type command struct {
	summary string
	hidden  bool
	run     func(args []string, stdout, stderr io.Writer) int
}

// commands is filled by the init functions of the files beside this one,
// one file per subcommand.
var commands = map[string]command{}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 2 && args[0] == "help" {
		cmd, ok := commands[args[1]]
		if !ok {
			fmt.Fprintf(stderr, "locksim help: unknown command %q\n", args[1])
			usage(stderr)
			return exitUsage
		}
		return cmd.run([]string{"-h"}, stdout, stderr) // its usage
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "locksim: unknown command %q\n", args[0])
		usage(stderr)
		return exitUsage
	}
	return cmd.run(args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: locksim COMMAND [ARGS]")
	fmt.Fprintln(w, "\ncommands:")
	names := make([]string, 0, len(commands))
	for name, c := range commands {
		if !c.hidden {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(w, "  %-10s %s\n", name, commands[name].summary)
	}
}
