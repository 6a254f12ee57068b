package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/store/internal/usersql"
)

// Users runs the contract of the web UI's users and sessions.
func Users(t *testing.T, open func(t *testing.T) *usersql.Store) {
	ctx := context.Background()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	t.Run("local users", func(t *testing.T) {
		s := open(t)
		hash, err := auth.HashPassword("correct horse battery")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Add(ctx, auth.User{Name: "alice", Role: auth.Operator, Source: auth.SourceLocal, Created: now}, hash); err != nil {
			t.Fatal(err)
		}
		if err := s.Add(ctx, auth.User{Name: "alice", Role: auth.Viewer, Source: auth.SourceLocal, Created: now}, hash); !errors.Is(err, auth.ErrUserTaken) {
			t.Fatalf("second alice: %v, want ErrUserTaken", err)
		}
		u, err := s.CheckPassword(ctx, "alice", "correct horse battery")
		if err != nil || u.Role != auth.Operator || !u.Created.Equal(now) || u.Source != auth.SourceLocal {
			t.Fatalf("alice: %+v, %v", u, err)
		}
		for _, c := range []struct{ name, pw string }{{"alice", "wrong horse battery"}, {"bob", "correct horse battery"}} {
			if _, err := s.CheckPassword(ctx, c.name, c.pw); !errors.Is(err, auth.ErrBadPassword) {
				t.Errorf("%s/%s: %v, want ErrBadPassword", c.name, c.pw, err)
			}
		}
		if err := s.SSOLogin(ctx, "alice", auth.Admin, now); !errors.Is(err, auth.ErrLocalUser) {
			t.Fatalf("SSO as local alice: %v, want ErrLocalUser", err)
		}
		if err := s.SSOLogin(ctx, "carol@example.org", auth.Viewer, now); err != nil {
			t.Fatal(err)
		}
		if err := s.SSOLogin(ctx, "carol@example.org", auth.Operator, now); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CheckPassword(ctx, "carol@example.org", ""); !errors.Is(err, auth.ErrBadPassword) {
			t.Fatalf("SSO user by password: %v, want ErrBadPassword", err)
		}
		us, err := s.List(ctx)
		if err != nil || len(us) != 2 || us[0].Name != "alice" || us[1].Name != "carol@example.org" || us[1].Role != auth.Operator || us[1].Source != auth.SourceOIDC {
			t.Fatalf("list: %+v, %v", us, err)
		}
		if err := s.SetRole(ctx, "alice", auth.Viewer); err != nil {
			t.Fatal(err)
		}
		if err := s.Remove(ctx, "bob"); !errors.Is(err, auth.ErrNoUser) {
			t.Fatalf("remove bob: %v, want ErrNoUser", err)
		}
		if err := s.Remove(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, "alice"); !errors.Is(err, auth.ErrNoUser) {
			t.Fatalf("removed alice: %v", err)
		}
	})
	t.Run("sessions", func(t *testing.T) {
		s := open(t)
		idle := 30 * time.Minute
		se := auth.Session{User: "alice", Role: auth.Operator, CSRF: "c1", Created: now, LastSeen: now, Expires: now.Add(8 * time.Hour)}
		if err := s.CreateSession(ctx, "h1", se); err != nil {
			t.Fatal(err)
		}
		got, err := s.Session(ctx, "h1", now.Add(20*time.Minute), idle)
		if err != nil || got.User != "alice" || got.Role != auth.Operator || got.CSRF != "c1" || !got.LastSeen.Equal(now.Add(20*time.Minute)) {
			t.Fatalf("session: %+v, %v", got, err)
		}
		// Used at 20 minutes, so alive at 45 (idle from 20), ended at 51.
		if _, err := s.Session(ctx, "h1", now.Add(45*time.Minute), idle); err != nil {
			t.Fatalf("at 45m: %v", err)
		}
		if _, err := s.Session(ctx, "h1", now.Add(76*time.Minute), idle); !errors.Is(err, auth.ErrSessionEnded) {
			t.Fatalf("idle: %v, want ErrSessionEnded", err)
		}
		// Absolute expiry ends a session in use.
		se2 := se
		se2.Expires = now.Add(time.Hour)
		if err := s.CreateSession(ctx, "h2", se2); err != nil {
			t.Fatal(err)
		}
		for m := 10; m < 60; m += 10 {
			if _, err := s.Session(ctx, "h2", now.Add(time.Duration(m)*time.Minute), idle); err != nil {
				t.Fatalf("h2 at %dm: %v", m, err)
			}
		}
		if _, err := s.Session(ctx, "h2", now.Add(time.Hour), idle); !errors.Is(err, auth.ErrSessionEnded) {
			t.Fatalf("absolute: %v, want ErrSessionEnded", err)
		}
		if err := s.CreateSession(ctx, "h3", se); err != nil {
			t.Fatal(err)
		}
		if err := s.EndSession(ctx, "h3"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Session(ctx, "h3", now, idle); !errors.Is(err, auth.ErrSessionEnded) {
			t.Fatalf("logged out: %v", err)
		}
		if _, err := s.Session(ctx, "nope", now, idle); !errors.Is(err, auth.ErrSessionEnded) {
			t.Fatalf("unknown: %v", err)
		}
		n, err := s.DeleteEnded(ctx, now.Add(2*time.Hour), idle)
		if err != nil || n != 2 {
			t.Fatalf("delete ended: %d, %v; want h1 and h2", n, err)
		}
	})
}
