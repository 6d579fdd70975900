package vaultsim

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// Creds are the credentials the simulator issues for one org. They are fake
// fixtures, so they are plain strings, meant to be handed to tests.
type Creds struct {
	OrgID     string `json:"org_id"`
	Token     string `json:"token"`      // org API token with the events scope
	JWT       string `json:"jwt"`        // HS256 user JWT (claims org_id, scope, exp)
	SCIMToken string `json:"scim_token"` // token without the events scope: 403
}

type principal struct {
	org   string // "" = a valid credential without org context (fails closed: zero rows)
	scope string
	key   string // the credential, for revocation and counting
}

func tokenFor(seed uint64, org, kind string) string {
	h := sha256.Sum256([]byte(strconv.FormatUint(seed, 10) + "\x00" + org + "\x00" + kind))
	return "vt_" + hex.EncodeToString(h[:16])
}

var b64 = base64.RawURLEncoding

// MintJWT signs an HS256 JWT with the server's secret. An empty org yields a
// token without org context; scope "" means "events".
func (s *Server) MintJWT(org, scope string, exp time.Time) string {
	if scope == "" {
		scope = "events"
	}
	claims := map[string]any{"exp": exp.Unix(), "iat": exp.Add(-s.cfg.JWTTTL).Unix(), "scope": scope}
	if org != "" {
		claims["org_id"] = org
	}
	body, _ := json.Marshal(claims)
	head := b64.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	signing := head + "." + b64.EncodeToString(body)
	return signing + "." + b64.EncodeToString(s.sign(signing))
}

func (s *Server) sign(msg string) []byte {
	m := hmac.New(sha256.New, []byte(s.cfg.JWTSecret))
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// authError is an auth failure with its status and code.
type authError struct {
	status int
	code   string
	msg    string
}

func (s *Server) authenticate(header string, now time.Time) (principal, *authError) {
	tok, ok := strings.CutPrefix(header, "Bearer ")
	tok = strings.TrimSpace(tok)
	if !ok || tok == "" {
		return principal{}, &authError{401, "missing_token", "an Authorization: Bearer <token> header is required"}
	}
	var p principal
	if strings.Count(tok, ".") == 2 {
		var err *authError
		if p, err = s.verifyJWT(tok, now); err != nil {
			return principal{}, err
		}
	} else if c, ok := s.tokens[tok]; ok {
		p = c
	} else {
		return principal{}, &authError{401, "invalid_token", "the token is not valid"}
	}
	if s.revoked(p.key) {
		return principal{}, &authError{401, "token_revoked", "the token has been revoked"}
	}
	if p.scope != "events" {
		return principal{}, &authError{403, "insufficient_scope", "the token lacks the events scope"}
	}
	if !s.use(p.key) {
		return principal{}, &authError{401, "token_revoked", "the token has been revoked"}
	}
	return p, nil
}

func (s *Server) verifyJWT(tok string, now time.Time) (principal, *authError) {
	bad := &authError{401, "invalid_token", "the token is not valid"}
	i := strings.LastIndexByte(tok, '.')
	sig, err := b64.DecodeString(tok[i+1:])
	if err != nil || subtle.ConstantTimeCompare(sig, s.sign(tok[:i])) != 1 {
		return principal{}, bad
	}
	parts := strings.Split(tok, ".")
	var head struct{ Alg string }
	hb, err := b64.DecodeString(parts[0])
	if err != nil || json.Unmarshal(hb, &head) != nil || head.Alg != "HS256" {
		return principal{}, bad
	}
	var claims struct {
		OrgID string `json:"org_id"`
		Scope string `json:"scope"`
		Exp   *int64 `json:"exp"`
	}
	pb, err := b64.DecodeString(parts[1])
	if err != nil || json.Unmarshal(pb, &claims) != nil || claims.Exp == nil {
		return principal{}, bad
	}
	if now.Unix() >= *claims.Exp {
		return principal{}, &authError{401, "token_expired", "the token has expired"}
	}
	if claims.Scope == "" {
		claims.Scope = "events"
	}
	return principal{org: claims.OrgID, scope: claims.Scope, key: tok}, nil
}
