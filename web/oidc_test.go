package web_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/web"
)

// issuer is a small OpenID Connect provider on loopback: discovery,
// JWKS, an authorization endpoint that logs in whoever the test says,
// and a token endpoint that checks the code, the client and PKCE, and
// signs the ID token with its RSA key (go-jose).
type issuer struct {
	t    *testing.T
	ts   *httptest.Server
	key  *rsa.PrivateKey
	sign *rsa.PrivateKey // the key ID tokens are signed with (key, or a stranger's)
	mu   sync.Mutex
	// who logs in next: the claims besides iss, aud, exp, iat, nonce.
	who   map[string]any
	codes map[string]grant
}

type grant struct {
	nonce, challenge, redirect string
	claims                     map[string]any
}

const clientID, clientSecret = "patchbay-test", "s3cret-of-the-client"

func newIssuer(t *testing.T) *issuer {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	is := &issuer{t: t, key: key, sign: key, codes: map[string]grant{}}
	mux := http.NewServeMux()
	is.ts = httptest.NewServer(mux)
	t.Cleanup(is.ts.Close)
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"issuer": is.ts.URL, "authorization_endpoint": is.ts.URL + "/authorize", "token_endpoint": is.ts.URL + "/token",
			"jwks_uri": is.ts.URL + "/jwks", "response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"}, "code_challenge_methods_supported": []string{"S256"}})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &is.key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	})
	mux.HandleFunc("GET /authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("client_id") != clientID || q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" || !strings.Contains(q.Get("scope"), "openid") {
			http.Error(w, "bad authorization request: "+q.Encode(), 400)
			return
		}
		is.mu.Lock()
		code := base64.RawURLEncoding.EncodeToString([]byte(time.Now().String()))
		is.codes[code] = grant{nonce: q.Get("nonce"), challenge: q.Get("code_challenge"), redirect: q.Get("redirect_uri"), claims: is.who}
		is.mu.Unlock()
		http.Redirect(w, r, q.Get("redirect_uri")+"?code="+url.QueryEscape(code)+"&state="+url.QueryEscape(q.Get("state")), http.StatusFound)
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		id, secret, ok := r.BasicAuth()
		if !ok {
			id, secret = r.PostFormValue("client_id"), r.PostFormValue("client_secret")
		}
		is.mu.Lock()
		g, found := is.codes[r.PostFormValue("code")]
		delete(is.codes, r.PostFormValue("code"))
		is.mu.Unlock()
		sum := sha256.Sum256([]byte(r.PostFormValue("code_verifier")))
		switch {
		case id != clientID || secret != clientSecret:
			http.Error(w, `{"error":"invalid_client"}`, 401)
			return
		case !found || g.redirect != r.PostFormValue("redirect_uri"):
			http.Error(w, `{"error":"invalid_grant"}`, 400)
			return
		case base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge:
			http.Error(w, `{"error":"invalid_grant","error_description":"PKCE"}`, 400)
			return
		}
		claims := map[string]any{"iss": is.ts.URL, "aud": clientID, "exp": time.Now().Add(5 * time.Minute).Unix(), "iat": time.Now().Unix(), "nonce": g.nonce}
		for k, v := range g.claims {
			claims[k] = v
		}
		payload, _ := json.Marshal(claims)
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: is.sign}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
		if err != nil {
			t.Error(err)
			return
		}
		jws, err := signer.Sign(payload)
		if err != nil {
			t.Error(err)
			return
		}
		idt, _ := jws.CompactSerialize()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": "at-" + g.nonce, "token_type": "Bearer", "expires_in": 300, "id_token": idt})
	})
	return is
}

// ssoLogin follows the single sign-on flow from the login button to its
// end, returning the last status, location and body.
func (p *person) ssoLogin(next string) (int, string, string) {
	p.f.t.Helper()
	target := p.f.ts.URL + "/auth/oidc?next=" + url.QueryEscape(next)
	for i := 0; i < 10; i++ {
		resp, err := p.c.Get(target)
		if err != nil {
			p.f.t.Fatal(err)
		}
		b := make([]byte, 1<<16)
		n, _ := resp.Body.Read(b)
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		if resp.StatusCode/100 != 3 || strings.HasPrefix(loc, "/") {
			return resp.StatusCode, loc, string(b[:n])
		}
		target = loc
	}
	p.f.t.Fatal("too many redirects")
	return 0, "", ""
}

func TestOIDCSingleSignOn(t *testing.T) {
	is := newIssuer(t)
	f := newFixture(t, func(c *web.Config, uiURL string) {
		c.OIDC = &web.OIDCConfig{Issuer: is.ts.URL, ClientID: clientID, ClientSecret: clientSecret, RedirectURL: uiURL + "/auth/oidc/callback",
			Roles: map[string]auth.Role{"patch-ops": auth.Operator, "sec-leads": auth.Viewer, "platform-admins": auth.Admin}, DisplayName: "Example SSO"}
	})
	who := func(claims map[string]any) {
		is.mu.Lock()
		is.who = claims
		is.mu.Unlock()
	}
	t.Run("groups give the role", func(t *testing.T) {
		_, _, page := f.person("x").get("/login")
		if !strings.Contains(page, "Log in with Example SSO") {
			t.Errorf("login page has no SSO button")
		}
		who(map[string]any{"sub": "u-1", "preferred_username": "carol@example.org", "groups": []string{"sec-leads", "patch-ops"}})
		carol := f.person("carol")
		code, loc, body := carol.ssoLogin("/findings?priority=P1")
		if code != http.StatusSeeOther || loc != "/findings?priority=P1" {
			t.Fatalf("SSO login: %d %s %s", code, loc, body)
		}
		_, _, page = carol.get("/")
		if !strings.Contains(page, `<span class="user">carol@example.org</span> <span class="role">operator</span>`) {
			t.Errorf("overview after SSO does not show carol as operator:\n%s", page)
		}
		u, err := f.db.Users.Get(t.Context(), "carol@example.org")
		if err != nil || u.Source != auth.SourceOIDC || u.Role != auth.Operator {
			t.Errorf("SSO user record: %+v %v", u, err)
		}
		// An approval by carol is carol's.
		p := f.createPlan("sso approval")
		_, _, pp := carol.get("/plans/" + p.ID)
		if code, _, body := carol.post("/plans/"+p.ID+"/approve", url.Values{"csrf": {csrfOf(t, pp)}}); code != http.StatusSeeOther {
			t.Fatalf("carol approves: %d %s", code, body)
		}
		if st := f.planStatus(p.ID); len(st.Plan.Approvals) != 1 || st.Plan.Approvals[0].By != "user:carol@example.org" {
			t.Errorf("approvals: %+v", st.Plan.Approvals)
		}
		// Next login, the groups changed: the role follows.
		who(map[string]any{"sub": "u-1", "preferred_username": "carol@example.org", "groups": []string{"platform-admins"}})
		carol2 := f.person("carol")
		carol2.ssoLogin("/")
		if _, _, page := carol2.get("/"); !strings.Contains(page, `<span class="role">admin</span>`) {
			t.Error("carol's second login did not give admin")
		}
	})
	t.Run("no group, no entry", func(t *testing.T) {
		who(map[string]any{"sub": "u-2", "preferred_username": "dave", "groups": []string{"marketing"}})
		code, _, body := f.person("dave").ssoLogin("/")
		if code != http.StatusForbidden || !strings.Contains(body, "in no group that gives a role") {
			t.Errorf("dave: %d %s", code, body)
		}
	})
	t.Run("a local user's name is not taken over", func(t *testing.T) {
		who(map[string]any{"sub": "u-3", "preferred_username": "alice", "groups": []string{"platform-admins"}})
		code, _, body := f.person("alice").ssoLogin("/")
		if code != http.StatusConflict || !strings.Contains(body, "local user") {
			t.Errorf("SSO as local alice: %d %s", code, body)
		}
	})
	t.Run("a token signed by another key is refused", func(t *testing.T) {
		other, _ := rsa.GenerateKey(rand.Reader, 2048)
		is.mu.Lock()
		is.sign = other
		is.mu.Unlock()
		defer func() { is.mu.Lock(); is.sign = is.key; is.mu.Unlock() }()
		who(map[string]any{"sub": "u-4", "preferred_username": "mallory", "groups": []string{"platform-admins"}})
		code, _, body := f.person("mallory").ssoLogin("/")
		if code != http.StatusUnauthorized || !strings.Contains(body, "did not verify") {
			t.Errorf("forged token: %d %s", code, body)
		}
	})
	t.Run("a callback not started here is refused", func(t *testing.T) {
		p := f.person("eve")
		code, _, body := p.get("/auth/oidc/callback?code=x&state=y")
		if code != http.StatusBadRequest || !strings.Contains(body, "state mismatch") {
			t.Errorf("callback without a login: %d %s", code, body)
		}
	})
}
