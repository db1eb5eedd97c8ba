package harness

import "go.uber.org/zap"

// quietZap is the etcd client's logger: errors only, to stderr (the client's
// log file).
func quietZap() *zap.Logger {
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(zap.ErrorLevel)
	l, err := cfg.Build()
	if err != nil {
		return zap.NewNop()
	}
	return l
}
