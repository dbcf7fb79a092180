package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"time"
)

// Server returns the configuration of a listener: it presents Cert and
// checks client certificates against CA as auth says. A client's verified
// certificate is in the connection state's VerifiedChains; Principal
// names it.
func (f Files) Server(auth ClientAuth) (*tls.Config, error) {
	if f.Cert == "" {
		return nil, errors.New("TLS on a listener needs --tls-cert and --tls-key (make them with `strata cert create-broker`)")
	}
	if auth != NoClientCert && f.CA == "" {
		return nil, fmt.Errorf("--tls-client-auth %s needs --tls-ca, the CA that signs client certificates", auth)
	}
	s, err := newStore(f)
	if err != nil {
		return nil, err
	}
	base := &tls.Config{MinVersion: tls.VersionTLS12}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			cert, pool := s.current()
			c := base.Clone()
			c.Certificates = []tls.Certificate{*cert}
			c.ClientCAs = pool
			switch auth {
			case RequireClientCert:
				c.ClientAuth = tls.RequireAndVerifyClientCert
			case RequestClientCert:
				c.ClientAuth = tls.VerifyClientCertIfGiven
			default:
				c.ClientAuth = tls.NoClientCert
			}
			return c, nil
		},
	}, nil
}

// Client returns the configuration of a dialler. serverName is the name
// the server's certificate must carry (a host name or IP); empty means
// the host name dialled, which crypto/tls fills in for names but not for
// IP addresses (SNI carries no IPs): a dialler that dials an IP with an
// empty serverName and a CA must set ConnectionState.ServerName itself
// (pkg/client does), or the handshake is refused. Cert, if given, is
// presented to servers that ask.
func (f Files) Client(serverName string) (*tls.Config, error) {
	s, err := newStore(f)
	if err != nil {
		return nil, err
	}
	c := &tls.Config{
		MinVersion: tls.VersionTLS12,
		ServerName: serverName,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			cert, _ := s.current()
			if cert == nil {
				return &tls.Certificate{}, nil // none: the server decides
			}
			return cert, nil
		},
	}
	if f.CA != "" {
		// Verify against the current CA (reloaded like the certificate):
		// crypto/tls's own check would use a pool fixed at creation.
		c.InsecureSkipVerify = true
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			_, pool := s.current()
			if serverName != "" {
				cs.ServerName = serverName // crypto/tls leaves IPs out
			}
			return verifyServer(cs, pool)
		}
	}
	return c, nil
}

// verifyServer checks a server's chain against pool and its name against
// the name dialled, as crypto/tls would.
func verifyServer(cs tls.ConnectionState, pool *x509.CertPool) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("tls: server sent no certificate")
	}
	if cs.ServerName == "" {
		// x509 would skip the name check: any certificate the CA signed
		// would pass for any server.
		return errors.New("tls: no server name to check the server's certificate against (dialled by IP address: give the server name)")
	}
	opts := x509.VerifyOptions{Roots: pool, Intermediates: x509.NewCertPool(), DNSName: cs.ServerName, CurrentTime: time.Now()}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	if ip := net.ParseIP(cs.ServerName); ip != nil {
		// x509 matches IP SANs through DNSName too.
		opts.DNSName = ip.String()
	}
	if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
		return fmt.Errorf("tls: server certificate not trusted by --tls-ca: %w", err)
	}
	return nil
}

// Principal is the identity of a verified peer certificate, as Kafka
// names it by default: "User:" and the subject's common name. ok is false
// when the connection has no verified client certificate.
func Principal(cs tls.ConnectionState) (name string, ok bool) {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return "", false
	}
	cn := cs.VerifiedChains[0][0].Subject.CommonName
	if cn == "" {
		return "", false
	}
	return "User:" + cn, true
}
