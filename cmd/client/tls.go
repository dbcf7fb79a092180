package main

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/stratalog/strata/pkg/client"
	"github.com/stratalog/strata/pkg/tlsconfig"
)

// tlsFlags are the global TLS flags; each has a STRATA_* variable that
// a flag given on the command line overrides.
type tlsFlags struct {
	on         bool
	ca         string
	cert       string
	key        string
	serverName string
}

const tlsHelp = `

TLS: brokers whose listeners use TLS need --tls-ca (the cluster's CA,
ca.crt from "strata cert create-ca"), or --tls alone when their
certificates come from a CA the system trusts. Brokers that ask for
client certificates (mutual TLS) need --tls-cert and --tls-key too (from
"strata cert create-client NAME"). Any of the files implies --tls. The
variables STRATA_TLS (true/false), STRATA_TLS_CA, STRATA_TLS_CERT,
STRATA_TLS_KEY and STRATA_TLS_SERVER_NAME set them when the flags are not
given.`

const tlsExamples = `
  strata --tls-ca certs/ca.crt cluster info
  export STRATA_TLS_CA=certs/ca.crt STRATA_TLS_CERT=certs/client.alice.crt STRATA_TLS_KEY=certs/client.alice.key
  seq 1 10 | strata produce events`

func (f *tlsFlags) register(pf *pflag.FlagSet) {
	pf.BoolVar(&f.on, "tls", false, "connect with TLS, trusting the system's CAs unless --tls-ca is given (env STRATA_TLS)")
	pf.StringVar(&f.ca, "tls-ca", "", "PEM file of the CA that signed the brokers' certificates; implies --tls (env STRATA_TLS_CA)")
	pf.StringVar(&f.cert, "tls-cert", "", "PEM file of a client certificate, for brokers that require one; implies --tls (env STRATA_TLS_CERT)")
	pf.StringVar(&f.key, "tls-key", "", "PEM file of the client certificate's key (env STRATA_TLS_KEY)")
	pf.StringVar(&f.serverName, "tls-server-name", "", "name every broker's certificate must carry, instead of the host dialled (env STRATA_TLS_SERVER_NAME)")
}

// fromEnv fills the flags not given on the command line from the
// environment.
func (f *tlsFlags) fromEnv(cmd *cobra.Command, getenv func(string) string) error {
	for _, v := range []struct {
		flag, env string
		to        *string
	}{
		{"tls-ca", "STRATA_TLS_CA", &f.ca},
		{"tls-cert", "STRATA_TLS_CERT", &f.cert},
		{"tls-key", "STRATA_TLS_KEY", &f.key},
		{"tls-server-name", "STRATA_TLS_SERVER_NAME", &f.serverName},
	} {
		if s := getenv(v.env); s != "" && !cmd.Flags().Changed(v.flag) {
			*v.to = s
		}
	}
	if s := getenv("STRATA_TLS"); s != "" && !cmd.Flags().Changed("tls") {
		on, err := strconv.ParseBool(s)
		if err != nil {
			return usageErrorf("STRATA_TLS=%q: want true or false", s)
		}
		f.on = on
	}
	if (f.cert == "") != (f.key == "") {
		return usageErrorf("--tls-cert and --tls-key go together: give both or neither")
	}
	return nil
}

// check reads the files, before a client is made: a missing or unreadable
// one is a mistake in the flags, said naming the flag (the client
// library's error names its option, TLSFiles).
func (f *tlsFlags) check() error {
	if files := (tlsconfig.Files{CA: f.ca, Cert: f.cert, Key: f.key}); files.Enabled() {
		if _, err := files.Client(f.serverName); err != nil {
			return usageErrorf("%v", err)
		}
	}
	return nil
}

// opts returns the client options the flags ask for: none for plaintext.
func (f *tlsFlags) opts() []client.Opt {
	files := tlsconfig.Files{CA: f.ca, Cert: f.cert, Key: f.key}
	if !f.on && !files.Enabled() && f.serverName == "" {
		return nil
	}
	return []client.Opt{client.TLSFiles(files, f.serverName)}
}

// adviseTLS rewrites a *client.TLSError into what to change.
func adviseTLS(err error, f *tlsFlags) (string, bool) {
	var te *client.TLSError
	if !errors.As(err, &te) {
		return "", false
	}
	var hint string
	switch te.Kind {
	case client.TLSUnknownAuthority:
		hint = "pass --tls-ca with the cluster's CA (the ca.crt that strata cert create-ca wrote)"
		if f.ca != "" {
			hint = fmt.Sprintf("--tls-ca %s did not sign it: pass the CA that signed the brokers' certificates", f.ca)
		}
	case client.TLSWrongName:
		hint = "connect by a name the certificate holds, pass --tls-server-name with one, or issue the broker a certificate for this host (strata cert create-broker HOST... --overwrite)"
	case client.TLSExpired:
		hint = "issue the broker a new certificate (strata cert create-broker HOST... --overwrite); brokers load new files without a restart"
	case client.TLSClientCertRequired:
		hint = "pass --tls-cert and --tls-key (make them with: strata cert create-client NAME)"
	case client.TLSClientCertRejected:
		hint = "pass a client certificate that the cluster's CA signed (strata cert create-client NAME --certs-dir with the CA)"
	case client.TLSNotSpoken:
		hint = "drop --tls, --tls-ca and the STRATA_TLS* variables, or use the address of a TLS listener"
	case client.TLSRequired:
		hint = "pass --tls-ca with the cluster's CA (or --tls if the brokers' certificates come from a CA the system trusts)"
	default:
		hint = "check --tls-ca, --tls-cert and --tls-key"
	}
	return fmt.Sprintf("%v: %s", err, hint), true
}
