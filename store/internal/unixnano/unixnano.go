// Package unixnano is how the stores keep times: Unix nanoseconds in a
// BIGINT column, 0 for the zero time ("never", "not yet").
package unixnano

import "time"

// From is t as stored.
func From(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// To is a stored time, in UTC.
func To(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
