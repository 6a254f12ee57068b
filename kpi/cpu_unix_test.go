//go:build unix

package kpi_test

import (
	"syscall"
	"time"
)

// cpuTime is the process's CPU time (user and system) so far: on a
// shared machine it says what an operation costs where the wall clock
// says how loaded the machine was.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
