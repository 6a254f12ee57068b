package storetest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patchbay/patchbay/auth"
)

// TokenStore keeps credentials.
type TokenStore interface {
	Create(ctx context.Context, t auth.Token, hash string) error
	Authenticate(ctx context.Context, secret string, now time.Time) (auth.Token, error)
	UseEnrollment(ctx context.Context, secret string, now time.Time) (auth.Token, error)
	Revoke(ctx context.Context, id string) error
	RevokeAt(ctx context.Context, id string, now time.Time) error
	List(ctx context.Context) ([]auth.Token, error)
}

func newToken(t *testing.T, s TokenStore, tok auth.Token) string {
	t.Helper()
	secret, id, hash, err := auth.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	tok.ID = id
	if err := s.Create(context.Background(), tok, hash); err != nil {
		t.Fatal(err)
	}
	return secret
}

// Tokens runs the credential contract.
func Tokens(t *testing.T, open func(t *testing.T) TokenStore) {
	ctx := context.Background()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

	t.Run("authenticate, expire, revoke", func(t *testing.T) {
		s := open(t)
		admin := newToken(t, s, auth.Token{Kind: auth.KindAPI, Role: auth.Admin, Name: "first admin", Created: now, UsesLeft: -1})
		tok, err := s.Authenticate(ctx, admin, now)
		if err != nil || tok.Role != auth.Admin || tok.Name != "first admin" || !tok.Created.Equal(now) || tok.ID != auth.IDOf(admin) {
			t.Fatalf("%+v %v", tok, err)
		}
		if _, err := s.Authenticate(ctx, admin+"x", now); !errors.Is(err, auth.ErrUnknown) {
			t.Errorf("wrong secret: %v", err)
		}
		short := newToken(t, s, auth.Token{Kind: auth.KindAPI, Role: auth.Viewer, Created: now, Expires: now.Add(time.Hour), UsesLeft: -1})
		if _, err := s.Authenticate(ctx, short, now.Add(59*time.Minute)); err != nil {
			t.Errorf("before expiry: %v", err)
		}
		if _, err := s.Authenticate(ctx, short, now.Add(time.Hour)); !errors.Is(err, auth.ErrExpired) {
			t.Errorf("at expiry: %v", err)
		}
		if err := s.Revoke(ctx, auth.IDOf(admin)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Authenticate(ctx, admin, now); !errors.Is(err, auth.ErrRevoked) {
			t.Errorf("revoked: %v", err)
		}
		if err := s.Revoke(ctx, "nope"); !errors.Is(err, auth.ErrUnknown) {
			t.Errorf("revoke unknown: %v", err)
		}
		list, err := s.List(ctx)
		if err != nil || len(list) != 2 {
			t.Fatalf("list %+v %v", list, err)
		}
		for _, tok := range list {
			if tok.Revoked != (tok.ID == auth.IDOf(admin)) {
				t.Errorf("list: %+v", tok)
			}
		}
	})

	t.Run("enrollment tokens: usage limit under concurrency, expiry", func(t *testing.T) {
		s := open(t)
		enroll := newToken(t, s, auth.Token{Kind: auth.KindEnrollment, Role: auth.Agent, Created: now, Expires: now.Add(24 * time.Hour), UsesLeft: 5})
		var ok, exhausted atomic.Int32
		var wg sync.WaitGroup
		for i := 0; i < 12; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := s.UseEnrollment(ctx, enroll, now)
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, auth.ErrExhausted):
					exhausted.Add(1)
				default:
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if ok.Load() != 5 || exhausted.Load() != 7 {
			t.Errorf("%d enrollments succeeded, %d exhausted; want 5 and 7", ok.Load(), exhausted.Load())
		}
		unlimited := newToken(t, s, auth.Token{Kind: auth.KindEnrollment, Role: auth.Agent, Created: now, Expires: now.Add(time.Hour), UsesLeft: -1})
		for i := 0; i < 3; i++ {
			if _, err := s.UseEnrollment(ctx, unlimited, now); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.UseEnrollment(ctx, unlimited, now.Add(2*time.Hour)); !errors.Is(err, auth.ErrExpired) {
			t.Errorf("expired enrollment: %v", err)
		}
		api := newToken(t, s, auth.Token{Kind: auth.KindAPI, Role: auth.Admin, Created: now, UsesLeft: -1})
		if _, err := s.UseEnrollment(ctx, api, now); !errors.Is(err, auth.ErrUnknown) {
			t.Errorf("an API token used to enroll: %v", err)
		}
	})

	t.Run("revoked once, the second time says when", func(t *testing.T) {
		s := open(t)
		secret := newToken(t, s, auth.Token{Kind: auth.KindAPI, Role: auth.Viewer, Created: now, UsesLeft: -1})
		id := auth.IDOf(secret)
		at := now.Add(time.Hour)
		var wg sync.WaitGroup
		var won atomic.Int32
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := s.RevokeAt(ctx, id, at)
				var already *auth.AlreadyRevokedError
				switch {
				case err == nil:
					won.Add(1)
				case errors.As(err, &already) && errors.Is(err, auth.ErrRevoked):
				default:
					t.Errorf("concurrent revocation: %v", err)
				}
			}()
		}
		wg.Wait()
		if won.Load() != 1 {
			t.Fatalf("%d of 4 concurrent revocations succeeded, want 1", won.Load())
		}
		err := s.RevokeAt(ctx, id, at.Add(time.Hour))
		var already *auth.AlreadyRevokedError
		if !errors.As(err, &already) || !already.At.Equal(at) || already.ID != id {
			t.Fatalf("second revocation: %v; want already revoked at %s", err, at)
		}
		if want := "token " + id + " is already revoked (at 2026-11-22T13:00:00Z)"; err.Error() != want {
			t.Errorf("message %q, want %q", err, want)
		}
		toks, err := s.List(ctx)
		if err != nil || len(toks) != 1 || !toks[0].Revoked || !toks[0].RevokedAt.Equal(at) {
			t.Errorf("listed: %+v %v; want revoked at %s", toks, err, at)
		}
		if err := s.RevokeAt(ctx, "nope", at); !errors.Is(err, auth.ErrUnknown) {
			t.Errorf("unknown id: %v", err)
		}
	})
}
