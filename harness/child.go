package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// ClientEnv carries a client process's ClientConfig (JSON).
const ClientEnv = "LOCKSIM_CLIENT"

// ClientCommand is the hidden subcommand a client process is started with.
const ClientCommand = "client"

// MaybeRunClient runs this process as a harness client, and exits, if it was
// started as one (ClientEnv is set); otherwise it returns at once. A
// program that runs the harness calls it first in main, and a test package
// that does, first in TestMain.
func MaybeRunClient() {
	conf, ok := os.LookupEnv(ClientEnv)
	if !ok {
		return
	}
	var cfg ClientConfig
	if err := json.Unmarshal([]byte(conf), &cfg); err != nil {
		fmt.Fprintf(os.Stderr, "locksim client: bad %s: %v\n", ClientEnv, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := RunClient(ctx, cfg, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "locksim client %s: %s\n", cfg.Proc, Redact(err.Error()))
		os.Exit(1)
	}
	os.Exit(0)
}
