package server_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/fleet"
)

func TestEnrollmentSpendsTokenOnlyWhenEnrolledSQLite(t *testing.T) {
	testEnrollmentSpendsTokenOnlyWhenEnrolled(t, "sqlite")
}
func TestEnrollmentSpendsTokenOnlyWhenEnrolledPostgres(t *testing.T) {
	testEnrollmentSpendsTokenOnlyWhenEnrolled(t, "postgres")
}

// usesLeft reads the uses left of the token with this secret.
func (f *fixture) usesLeft(secret string) int {
	f.t.Helper()
	tok, err := f.db.Tokens.Authenticate(context.Background(), secret, time.Now())
	if err != nil && tok.ID == "" {
		f.t.Fatal(err)
	}
	return tok.UsesLeft
}

// testEnrollmentSpendsTokenOnlyWhenEnrolled: a use of an enrollment token
// is spent in the transaction of the enrollment it admits — a failed
// enrollment spends none, and a token with one use admits one host of
// several racing.
func testEnrollmentSpendsTokenOnlyWhenEnrolled(t *testing.T, backend string) {
	f := newFixture(t, backend, nil)
	ctx := context.Background()
	one := f.token(auth.KindEnrollment, auth.Agent, 1, time.Time{})
	first := f.enroll(f.token(auth.KindEnrollment, auth.Agent, 1, time.Time{}), factsOf("first", "m-first"))

	f.chapter("a refused enrollment spends no use", func(t *testing.T) {
		code, b := f.do("POST", api.Prefix+"/agent/enroll", one, api.EnrollRequest{Facts: factsOf("a\x00b", "m-bad")})
		if code != http.StatusBadRequest {
			t.Errorf("enroll with a NUL in the hostname: %d %s", code, b)
		}
		if n := f.usesLeft(one); n != 1 {
			t.Errorf("uses left after a refused enrollment: %d, want 1", n)
		}
	})
	f.chapter("a failed enrollment spends no use", func(t *testing.T) {
		// The store fails the enrollment after the token's use is spent:
		// the host id is taken.
		now := time.Now().UTC()
		h := fleet.Host{ID: first.HostID, MachineID: "m-dup", Hostname: "dup", Ecosystem: "Debian:12", Labels: map[string]string{},
			LastSeen: now, Facts: factsOf("dup", "m-dup"), EnrolledAt: now}
		_, credID, credHash, err := auth.NewSecret()
		if err != nil {
			t.Fatal(err)
		}
		cred := auth.Token{ID: credID, Kind: auth.KindHost, Role: auth.Agent, Name: "dup", Created: now, UsesLeft: -1, Subject: h.ID}
		if _, err := f.db.Fleet.Enroll(ctx, h, cred, credHash, auth.HashOf(one)); err == nil {
			t.Fatal("an enrollment with a taken host id succeeded")
		}
		if n := f.usesLeft(one); n != 1 {
			t.Errorf("uses left after a failed enrollment: %d, want 1", n)
		}
	})
	f.chapter("the token then admits a host", func(t *testing.T) {
		f.enroll(one, factsOf("good", "m-good"))
		if n := f.usesLeft(one); n != 0 {
			t.Errorf("uses left after the enrollment: %d, want 0", n)
		}
		code, b := f.do("POST", api.Prefix+"/agent/enroll", one, api.EnrollRequest{Facts: factsOf("more", "m-more")})
		if code != http.StatusUnauthorized {
			t.Errorf("enroll with a spent token: %d %s", code, b)
		}
	})
	f.chapter("one use admits one of five racing hosts", func(t *testing.T) {
		race := f.token(auth.KindEnrollment, auth.Agent, 1, time.Time{})
		hostsBefore, err := f.db.Fleet.Hosts(ctx, fleet.HostFilter{})
		if err != nil {
			t.Fatal(err)
		}
		codes := make([]int, 5)
		var wg sync.WaitGroup
		for i := range codes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				codes[i], _ = f.do("POST", api.Prefix+"/agent/enroll", race, api.EnrollRequest{Facts: factsOf(fmt.Sprintf("race-%d", i), fmt.Sprintf("m-race-%d", i))})
			}()
		}
		wg.Wait()
		created := 0
		for _, c := range codes {
			switch c {
			case http.StatusCreated:
				created++
			case http.StatusUnauthorized:
			default:
				t.Errorf("racing enrollment: %d", c)
			}
		}
		hostsAfter, err := f.db.Fleet.Hosts(ctx, fleet.HostFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if created != 1 || len(hostsAfter) != len(hostsBefore)+1 {
			t.Errorf("%d enrollments created, %d hosts added (codes %v); want 1 and 1", created, len(hostsAfter)-len(hostsBefore), codes)
		}
	})
}
