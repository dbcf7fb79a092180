package broker

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"

	"github.com/stratalog/strata/pkg/tlsconfig"
)

// Security protocols of a client listener, as Kafka names them
// (listener.security.protocol.map): whether the connection is TLS, and
// whether clients must authenticate with SCRAM.
const (
	ProtocolPlaintext     = "PLAINTEXT"
	ProtocolSSL           = "SSL"
	ProtocolSASLPlaintext = "SASL_PLAINTEXT"
	ProtocolSASLSSL       = "SASL_SSL"
)

// DefaultListenerName is the name of the listener --api-addr describes,
// and of an old broker's only listener.
const DefaultListenerName = "CLIENT"

// listener is one named client listener: where it binds, what clients are
// told to dial, and its security. Each has its own gRPC server; a request
// carries the listener it came in on in its context (withListener), so
// that Metadata answers with that listener's addresses and authentication
// applies that listener's rules.
type listener struct {
	Name       string // upper case, e.g. "CLIENT", "EXTERNAL"
	Addr       string // bind host:port
	Advertised string // host:port clients are told (Addr made dialable if empty)
	Protocol   string // ProtocolPlaintext, ...
}

// TLS reports whether the listener's connections are TLS.
func (l *listener) TLS() bool { return l.Protocol == ProtocolSSL || l.Protocol == ProtocolSASLSSL }

// SASL reports whether clients must authenticate with a username and
// password (SCRAM) on this listener.
func (l *listener) SASL() bool {
	return l.Protocol == ProtocolSASLPlaintext || l.Protocol == ProtocolSASLSSL
}

type listenerKey struct{}

// withListener records the listener a request came in on.
func withListener(ctx context.Context, l *listener) context.Context {
	return context.WithValue(ctx, listenerKey{}, l)
}

// listenerFrom returns the listener a request came in on; a request with
// none (in-process calls, tests) counts as the default plaintext listener.
func listenerFrom(ctx context.Context) *listener {
	if l, ok := ctx.Value(listenerKey{}).(*listener); ok {
		return l
	}
	return &defaultListener
}

var defaultListener = listener{Name: DefaultListenerName, Protocol: ProtocolPlaintext}

// listenerName is what a listener name may be: Kafka's names are free-form
// but normalised to upper case; ours are also short and plain, since
// every broker gossips them (cluster.Meta's 512 bytes).
var listenerName = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,31}$`)

// parseListenerURL reads NAME://host:port.
func parseListenerURL(flag, s string) (name, addr string, err error) {
	name, addr, ok := strings.Cut(strings.TrimSpace(s), "://")
	name = strings.ToUpper(name)
	if !ok {
		return "", "", fmt.Errorf("%s %q: want NAME://host:port, e.g. CLIENT://0.0.0.0:9290", flag, s)
	}
	if !listenerName.MatchString(name) {
		return "", "", fmt.Errorf("%s %q: a listener name is a letter then up to 31 letters, digits or _", flag, s)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return "", "", fmt.Errorf("%s %q: want NAME://host:port (%v)", flag, s, err)
	}
	return name, addr, nil
}

// listeners resolves --listeners, --advertised-listeners,
// --listener-security-protocol-map and --api-addr into the broker's client
// listeners, the first being the one --api-addr names (see
// primaryListener). Its errors name the flag to fix.
//
// --api-addr is shorthand for --listeners CLIENT://<addr>. Given together
// with --listeners it must say the same thing (the CLIENT listener's
// address) or be left at its default; anything else is an error, rather
// than one silently winning.
func (c Config) listeners() ([]listener, error) {
	var out []listener
	urls := c.Listeners
	if len(urls) == 0 {
		if _, _, err := net.SplitHostPort(c.APIAddr); err != nil {
			return nil, fmt.Errorf("--api-addr %q: want host:port (%v)", c.APIAddr, err)
		}
		urls = []string{DefaultListenerName + "://" + c.APIAddr}
	}
	ports := map[string]string{}
	for _, u := range urls {
		name, addr, err := parseListenerURL("--listeners", u)
		if err != nil {
			return nil, err
		}
		if slices.ContainsFunc(out, func(l listener) bool { return l.Name == name }) {
			return nil, fmt.Errorf("--listeners: the name %s is given twice; every listener needs its own name", name)
		}
		_, port, _ := net.SplitHostPort(addr)
		if other, ok := ports[port]; ok && port != "0" {
			return nil, fmt.Errorf("--listeners: %s and %s both use port %s; give each listener its own port", other, name, port)
		}
		ports[port] = name
		out = append(out, listener{Name: name, Addr: addr, Protocol: defaultProtocol(name)})
	}
	if len(c.Listeners) > 0 && c.APIAddr != "" && c.APIAddr != DefaultConfig().APIAddr {
		i := slices.IndexFunc(out, func(l listener) bool { return l.Name == DefaultListenerName })
		if i < 0 || out[i].Addr != c.APIAddr {
			return nil, fmt.Errorf("--api-addr %s and --listeners both given: --api-addr is shorthand for --listeners %s://%s; drop --api-addr (or make it the %s listener's address)",
				c.APIAddr, DefaultListenerName, c.APIAddr, DefaultListenerName)
		}
	}
	find := func(flag, s, name string) (int, error) {
		i := slices.IndexFunc(out, func(l listener) bool { return l.Name == name })
		if i < 0 {
			return -1, fmt.Errorf("%s %q: no listener is named %s (listeners: %s); add it to --listeners", flag, s, name, listenerNames(out))
		}
		return i, nil
	}
	seen := map[string]bool{}
	for _, u := range c.AdvertisedListeners {
		name, addr, err := parseListenerURL("--advertised-listeners", u)
		if err != nil {
			return nil, err
		}
		i, err := find("--advertised-listeners", u, name)
		if err != nil {
			return nil, err
		}
		if seen[name] {
			return nil, fmt.Errorf("--advertised-listeners: %s is given twice", name)
		}
		seen[name] = true
		if host, port, _ := net.SplitHostPort(addr); host == "" || port == "0" || net.ParseIP(host) != nil && net.ParseIP(host).IsUnspecified() {
			return nil, fmt.Errorf("--advertised-listeners %q: clients must be able to dial it: give a host and a port (not 0.0.0.0, not port 0)", u)
		}
		out[i].Advertised = addr
	}
	seen = map[string]bool{}
	for _, m := range c.ListenerSecurityProtocolMap {
		name, proto, ok := strings.Cut(strings.TrimSpace(m), ":")
		name, proto = strings.ToUpper(name), strings.ToUpper(proto)
		if !ok {
			return nil, fmt.Errorf("--listener-security-protocol-map %q: want NAME:PROTOCOL, e.g. EXTERNAL:SSL", m)
		}
		i, err := find("--listener-security-protocol-map", m, name)
		if err != nil {
			return nil, err
		}
		switch proto {
		case ProtocolPlaintext, ProtocolSSL, ProtocolSASLPlaintext, ProtocolSASLSSL:
		default:
			return nil, fmt.Errorf("--listener-security-protocol-map %q: protocol %s: want PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL", m, proto)
		}
		if seen[name] {
			return nil, fmt.Errorf("--listener-security-protocol-map: %s is given twice", name)
		}
		seen[name] = true
		out[i].Protocol = proto
	}
	if _, err := tlsconfig.ParseClientAuth(c.TLSClientAuth); err != nil {
		return nil, fmt.Errorf("--tls-client-auth: %v", err)
	}
	for _, l := range out {
		if l.TLS() && (c.TLSCert == "" || c.TLSKey == "") {
			return nil, fmt.Errorf("listener %s is %s: TLS needs --tls-cert and --tls-key (make them with `strata cert create-broker`)", l.Name, l.Protocol)
		}
		if l.TLS() && c.TLSClientAuth != "" && c.TLSClientAuth != "none" && c.TLSCA == "" {
			return nil, fmt.Errorf("--tls-client-auth %s needs --tls-ca, the CA that signs client certificates", c.TLSClientAuth)
		}
	}
	// The listener --api-addr names (CLIENT, else the first) goes first:
	// its address is the one older brokers and the internal calls use.
	if i := slices.IndexFunc(out, func(l listener) bool { return l.Name == DefaultListenerName }); i > 0 {
		out[0], out[i] = out[i], out[0]
	}
	return out, nil
}

// defaultProtocol is a listener's protocol when the map does not name it:
// as in Kafka, a listener named after a protocol uses it; others are
// PLAINTEXT.
func defaultProtocol(name string) string {
	switch name {
	case ProtocolSSL, ProtocolSASLPlaintext, ProtocolSASLSSL:
		return name
	}
	return ProtocolPlaintext
}

func listenerNames(ls []listener) string {
	names := make([]string, len(ls))
	for i, l := range ls {
		names[i] = l.Name
	}
	return strings.Join(names, ", ")
}
