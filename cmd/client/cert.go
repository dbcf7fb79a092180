package main

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/stratalog/strata/pkg/tlsconfig"
)

// Default lifetimes, as `cockroach cert`'s: a development CA outlives the
// certificates it signs.
const (
	defaultCALifetime   = 10 * 365 * 24 * time.Hour
	defaultCertLifetime = 5 * 365 * 24 * time.Hour
)

// certFlags are what every cert subcommand shares.
type certFlags struct {
	dir       string
	caKey     string // default <dir>/ca.key
	lifetime  time.Duration
	overwrite bool
}

func (f *certFlags) register(cmd *cobra.Command, lifetime time.Duration, withCAKey bool) {
	cmd.Flags().StringVar(&f.dir, "certs-dir", "certs", "directory of the certificates (ca.crt, broker.crt, client.NAME.crt) and their keys")
	if withCAKey {
		cmd.Flags().StringVar(&f.caKey, "ca-key", "", "the CA's key (default <certs-dir>/ca.key; keep it off the brokers)")
	}
	if lifetime > 0 {
		cmd.Flags().DurationVar(&f.lifetime, "lifetime", lifetime, "how long the certificate is valid")
		cmd.Flags().BoolVar(&f.overwrite, "overwrite", false, "replace existing files")
	}
}

func (f *certFlags) caKeyPath() string {
	if f.caKey != "" {
		return f.caKey
	}
	return filepath.Join(f.dir, "ca.key")
}

func newCertCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cert",
		Short: "Create a development CA and broker and client certificates for TLS",
		Long: `strata cert makes the files TLS needs, as "cockroach cert" does: a CA, a
certificate for each broker (naming every host clients and other brokers
reach it by) and client certificates for mutual TLS (the client's name is
its principal, User:NAME, in ACLs). Keys are written 0600; existing files
are kept unless --overwrite is given.

The CA is for development and small clusters: keep ca.key off the
brokers, and use your organisation's CA where there is one (the brokers
and clients take any PEM files).`,
		Example: `  strata cert create-ca --certs-dir certs
  strata cert create-broker localhost 127.0.0.1 --certs-dir certs
  strata cert create-broker strata1 --name strata1 --certs-dir certs
  strata cert create-client alice --certs-dir certs
  strata cert list --certs-dir certs`,
	}
	cmd.AddCommand(newCertCreateCACmd(e), newCertCreateBrokerCmd(e), newCertCreateClientCmd(e), newCertListCmd(e))
	return cmd
}

func newCertCreateCACmd(e *env) *cobra.Command {
	var f certFlags
	cmd := &cobra.Command{
		Use:   "create-ca",
		Short: "Create a CA: <certs-dir>/ca.crt and its key",
		Long: `Create a self-signed CA, <certs-dir>/ca.crt, and its key, <certs-dir>/ca.key
(or --ca-key), written 0600. Brokers and clients take ca.crt as --tls-ca;
the key signs the certificates create-broker and create-client make: keep
it off the brokers. An existing CA is kept unless --overwrite is given
(every certificate it signed then stops being trusted).`,
		Args: cobra.NoArgs,
		Example: `  strata cert create-ca --certs-dir certs
  strata cert create-ca --certs-dir certs --ca-key safe/ca.key --lifetime 87600h`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, d := range []string{f.dir, filepath.Dir(f.caKeyPath())} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					return err
				}
			}
			crt := filepath.Join(f.dir, "ca.crt")
			if err := f.refuseExisting(crt, f.caKeyPath()); err != nil {
				return err
			}
			ca, err := tlsconfig.NewCA("Strata CA", f.lifetime)
			if err != nil {
				return err
			}
			if err := tlsconfig.WriteFiles(ca.Cert, ca.Key, crt, f.caKeyPath(), f.overwrite); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "wrote %s and %s (valid until %s; keep the key secret: it signs certificates)\n",
				crt, f.caKeyPath(), ca.Cert.NotAfter.UTC().Format(time.DateOnly))
			caKey := ""
			if f.caKey != "" {
				caKey = " --ca-key " + f.caKey
			}
			fmt.Fprintf(e.stdout, "next: a certificate per broker, naming every host it is reached by:\n  strata cert create-broker HOST... --certs-dir %s%s\n", f.dir, caKey)
			return nil
		},
	}
	f.register(cmd, defaultCALifetime, true)
	return cmd
}

func newCertCreateBrokerCmd(e *env) *cobra.Command {
	var f certFlags
	var name string
	cmd := &cobra.Command{
		Use:   "create-broker HOST...",
		Short: "Create a broker's certificate for the hosts it is reached by",
		Long: `Create a broker's certificate and key, signed by the CA in --certs-dir,
valid for every HOST given (DNS names or IP addresses): the names clients
dial and the hosts of its advertised listeners, which other brokers dial.
The files are <certs-dir>/broker.crt and broker.key, or
broker.NAME.crt and broker.NAME.key with --name NAME (for several brokers
in one directory). The certificate's name (its principal) is --name, or
the first HOST.`,
		Example: `  strata cert create-broker localhost 127.0.0.1 --certs-dir certs
  strata cert create-broker strata1 10.0.0.1 --name strata1 --certs-dir certs`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErrorf("create-broker needs the hosts the broker is reached by, e.g. strata cert create-broker localhost 127.0.0.1")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, hosts []string) error {
			base, cn := "broker", hosts[0]
			if name != "" {
				if err := checkCertName(name, "--name"); err != nil {
					return err
				}
				base, cn = "broker."+name, name
			}
			crt, key, leaf, err := f.issue(cn, hosts, base)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "wrote %s and %s for %s (valid until %s)\n", crt, key, strings.Join(hosts, ", "), leaf.Cert.NotAfter.UTC().Format(time.DateOnly))
			ca := filepath.Join(f.dir, "ca.crt")
			fmt.Fprintf(e.stdout, "next: start the broker with TLS on its listeners:\n  strata-broker --tls-cert %s --tls-key %s --tls-ca %s --listeners SSL://%s ...\n", crt, key, ca, listenHint(hosts[0]))
			fmt.Fprintf(e.stdout, "and connect with:\n  strata --tls-ca %s --brokers %s cluster info\n", ca, listenHint(hosts[0]))
			return nil
		},
	}
	f.register(cmd, defaultCertLifetime, true)
	cmd.Flags().StringVar(&name, "name", "", "name of the files (broker.NAME.crt) and of the certificate, for several brokers in one directory")
	return cmd
}

func listenHint(host string) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]:9290"
	}
	return host + ":9290"
}

func newCertCreateClientCmd(e *env) *cobra.Command {
	var f certFlags
	cmd := &cobra.Command{
		Use:   "create-client NAME",
		Short: "Create a client certificate; its principal is User:NAME",
		Long: `Create a client certificate and key for mutual TLS, signed by the CA in
--certs-dir: <certs-dir>/client.NAME.crt and client.NAME.key. Brokers
started with --tls-client-auth require (or request) take the certificate's
name as the client's principal, User:NAME, which ACLs name.`,
		Example: `  strata cert create-client alice --certs-dir certs
  strata --tls-ca certs/ca.crt --tls-cert certs/client.alice.crt --tls-key certs/client.alice.key topic list`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErrorf("create-client needs one NAME (the principal is User:NAME), e.g. strata cert create-client alice")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := checkCertName(name, "NAME"); err != nil {
				return err
			}
			crt, key, leaf, err := f.issue(name, nil, "client."+name)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "wrote %s and %s for principal User:%s (valid until %s)\n", crt, key, name, leaf.Cert.NotAfter.UTC().Format(time.DateOnly))
			fmt.Fprintf(e.stdout, "next: connect with:\n  strata --tls-ca %s --tls-cert %s --tls-key %s cluster info\n", filepath.Join(f.dir, "ca.crt"), crt, key)
			return nil
		},
	}
	f.register(cmd, defaultCertLifetime, true)
	return cmd
}

// checkCertName keeps a name usable in a file name and as a principal:
// the certificate's common name is the principal User:NAME, so it follows
// the brokers' rule for user names (metadata.ValidateUserName: UTF-8,
// no spaces or control characters; not imported, as pkg/metadata brings
// Raft into the CLI), within X.509's 64 characters for a common name.
func checkCertName(name, flag string) error {
	bad := name == "" || utf8.RuneCountInString(name) > 64 || !utf8.ValidString(name) ||
		strings.ContainsAny(name, `/\:`) || strings.HasPrefix(name, ".") ||
		strings.IndexFunc(name, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0
	if bad {
		return usageErrorf("%s %q: want 1 to 64 characters without spaces, control characters, /, \\, : or a leading dot (it is the principal User:NAME)", flag, name)
	}
	return nil
}

// issue signs a certificate with the CA of the flags and writes it to
// <dir>/<base>.crt and .key.
func (f *certFlags) issue(cn string, hosts []string, base string) (crt, key string, leaf *tlsconfig.Leaf, err error) {
	caCrt := filepath.Join(f.dir, "ca.crt")
	ca, err := tlsconfig.LoadCA(caCrt, f.caKeyPath())
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", "", nil, fmt.Errorf("no CA in %s: %w (make one with: strata cert create-ca --certs-dir %s, or pass --ca-key)", f.dir, err, f.dir)
		}
		return "", "", nil, err
	}
	if until := time.Now().Add(f.lifetime); until.After(ca.Cert.NotAfter) {
		return "", "", nil, usageErrorf("--lifetime %s outlives the CA, which expires %s: pass a shorter --lifetime", f.lifetime, ca.Cert.NotAfter.UTC().Format(time.DateOnly))
	}
	crt, key = filepath.Join(f.dir, base+".crt"), filepath.Join(f.dir, base+".key")
	if err := f.refuseExisting(crt, key); err != nil {
		return "", "", nil, err
	}
	leaf, err = ca.Issue(cn, hosts, f.lifetime)
	if err != nil {
		return "", "", nil, err
	}
	if err := tlsconfig.WriteFiles(leaf.Cert, leaf.Key, crt, key, f.overwrite); err != nil {
		return "", "", nil, err
	}
	return crt, key, leaf, nil
}

// refuseExisting fails, before anything is written, if any of paths
// exists and --overwrite was not given: a certificate and its key are
// replaced together or not at all.
func (f *certFlags) refuseExisting(paths ...string) error {
	if f.overwrite {
		return nil
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return fmt.Errorf("%s exists: pass --overwrite to replace it", p)
		}
	}
	return nil
}

// certInfo is one certificate of `strata cert list`.
type certInfo struct {
	File    string    `json:"file"`
	Subject string    `json:"subject"`
	SANs    []string  `json:"sans"`
	Expires time.Time `json:"expires"`
	Issuer  string    `json:"issuer"`
	CA      bool      `json:"ca"`
}

func newCertListCmd(e *env) *cobra.Command {
	var f certFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the certificates in --certs-dir: subject, hosts, expiry, issuer",
		Long: `List every *.crt in --certs-dir: its subject (the common name, a client's
principal), the hosts it is valid for (SANS), when it expires (marked
"expired" once past) and the CA that issued it. -o json adds whether
each is a CA.`,
		Args: cobra.NoArgs,
		Example: `  strata cert list --certs-dir certs
  strata cert list --certs-dir certs -o json`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			certs, err := listCerts(f.dir)
			if err != nil {
				return err
			}
			if e.output == "json" {
				return printJSON(e.stdout, certs)
			}
			t := newTable(e.stdout, "FILE", "SUBJECT", "SANS", "EXPIRES", "ISSUER")
			for _, c := range certs {
				sans := strings.Join(c.SANs, ",")
				if sans == "" {
					sans = "-"
				}
				exp := c.Expires.UTC().Format(time.DateOnly)
				if time.Now().After(c.Expires) {
					exp += " (expired)"
				}
				t.row(c.File, c.Subject, sans, exp, c.Issuer)
			}
			return t.flush()
		},
	}
	f.register(cmd, 0, false)
	return cmd
}

// listCerts reads every *.crt in dir.
func listCerts(dir string) ([]certInfo, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.crt"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("--certs-dir %s: %w", dir, err)
		}
	}
	sort.Strings(files)
	out := []certInfo{}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		block, _ := pem.Decode(b)
		if block == nil || block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%s holds no PEM certificate", file)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		info := certInfo{File: filepath.Base(file), Subject: c.Subject.CommonName, Expires: c.NotAfter,
			Issuer: c.Issuer.CommonName, CA: c.IsCA, SANs: append([]string{}, c.DNSNames...)}
		for _, ip := range c.IPAddresses {
			info.SANs = append(info.SANs, ip.String())
		}
		out = append(out, info)
	}
	return out, nil
}
