package locks_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind (a
// renewer of Run, the timer goroutine of WithTimeout).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
