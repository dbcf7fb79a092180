package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// ClientAuth is how a server treats client certificates.
type ClientAuth string

const (
	// NoClientCert asks for none.
	NoClientCert ClientAuth = "none"
	// RequestClientCert asks for one and verifies it against the CA if
	// given; a client without one is still served (anonymous).
	RequestClientCert ClientAuth = "request"
	// RequireClientCert refuses a client without a certificate that the
	// CA signed.
	RequireClientCert ClientAuth = "require"
)

// ParseClientAuth reads a --tls-client-auth value.
func ParseClientAuth(s string) (ClientAuth, error) {
	switch a := ClientAuth(strings.ToLower(s)); a {
	case NoClientCert, RequestClientCert, RequireClientCert:
		return a, nil
	case "":
		return NoClientCert, nil
	}
	return "", fmt.Errorf("want none, request or require, not %q", s)
}

// Files names the PEM files of one end. Cert and Key go together (both or
// neither); CA is the bundle that peers' certificates are checked against
// (a server's clients, a client's servers). For a client, an empty CA
// means the system's roots.
type Files struct {
	Cert, Key, CA string
	// OnError, if set, is told when a changed file could not be loaded
	// (the previous certificate stays in use).
	OnError func(error)
}

// Enabled reports whether any file is named.
func (f Files) Enabled() bool { return f.Cert != "" || f.Key != "" || f.CA != "" }

// check is the files' static validation; its messages name the flags.
func (f Files) check() error {
	if (f.Cert == "") != (f.Key == "") {
		return errors.New("--tls-cert and --tls-key go together: give both or neither")
	}
	return nil
}

// reloadEvery bounds how often a handshake looks at the files' times
// (tests set 0).
var reloadEvery = time.Second

// store holds the loaded files and reloads them when they change.
type store struct {
	f Files

	mu       sync.Mutex
	checked  time.Time
	stamp    string // files' sizes and modification times when loaded
	cert     *tls.Certificate
	pool     *x509.CertPool
	notAfter time.Time
}

func newStore(f Files) (*store, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	s := &store{f: f}
	cert, pool, stamp, err := f.load()
	if err != nil {
		return nil, err
	}
	s.cert, s.pool, s.stamp, s.checked = cert, pool, stamp, time.Now()
	return s, nil
}

// current returns the certificate and CA pool, loading them again if the
// files changed since they were last loaded.
func (s *store) current() (*tls.Certificate, *x509.CertPool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now := time.Now(); now.Sub(s.checked) >= reloadEvery {
		s.checked = now
		if stamp := s.f.stamp(); stamp != s.stamp {
			cert, pool, stamp, err := s.f.load()
			if err != nil {
				if s.f.OnError != nil {
					s.f.OnError(fmt.Errorf("reload TLS files (keeping the previous ones): %w", err))
				}
				// Try again at the next check: the file may be half written.
			} else {
				s.cert, s.pool, s.stamp = cert, pool, stamp
			}
		}
	}
	return s.cert, s.pool
}

// stamp summarises the files' sizes and modification times.
func (f Files) stamp() string {
	var b strings.Builder
	for _, p := range []string{f.Cert, f.Key, f.CA} {
		if p == "" {
			continue
		}
		if st, err := os.Stat(p); err == nil {
			fmt.Fprintf(&b, "%s:%d:%d;", p, st.Size(), st.ModTime().UnixNano())
		} else {
			fmt.Fprintf(&b, "%s:missing;", p)
		}
	}
	return b.String()
}

// load reads the files. The stamp is taken first, so that a file changed
// while it is read is read again at the next check.
func (f Files) load() (*tls.Certificate, *x509.CertPool, string, error) {
	stamp := f.stamp()
	var cert *tls.Certificate
	if f.Cert != "" {
		c, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, nil, "", fmt.Errorf("--tls-cert %s / --tls-key %s: %w", f.Cert, f.Key, err)
		}
		cert = &c
	}
	var pool *x509.CertPool
	if f.CA != "" {
		pem, err := os.ReadFile(f.CA)
		if err != nil {
			return nil, nil, "", fmt.Errorf("--tls-ca: %w", err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, "", fmt.Errorf("--tls-ca %s: no PEM certificate in it", f.CA)
		}
	}
	return cert, pool, stamp, nil
}
