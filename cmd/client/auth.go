package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/stratalog/strata/pkg/client"
)

// authFlags are the global SASL flags: --user, --password,
// --sasl-mechanism, and STRATA_USER, STRATA_PASSWORD,
// STRATA_SASL_MECHANISM.
type authFlags struct {
	user      string
	password  string
	mechanism string
}

func (a *authFlags) bind(pf *pflag.FlagSet) {
	pf.StringVar(&a.user, "user", "", "SASL/SCRAM user, for brokers whose listener is SASL_PLAINTEXT or SASL_SSL (env STRATA_USER)")
	pf.StringVar(&a.password, "password", "", "password of --user (env STRATA_PASSWORD; asked for on a terminal when missing)")
	pf.StringVar(&a.mechanism, "sasl-mechanism", "", "SCRAM-SHA-256 (default) or SCRAM-SHA-512 (env STRATA_SASL_MECHANISM)")
}

// saslOpts resolves the flags and environment into the client option, if
// a user is given.
func (e *env) saslOpts() ([]client.Opt, error) {
	a := e.auth
	if a.user == "" {
		a.user = e.getenv("STRATA_USER")
	}
	if a.user == "" {
		return nil, nil
	}
	if a.mechanism == "" {
		a.mechanism = e.getenv("STRATA_SASL_MECHANISM")
	}
	if a.mechanism == "" {
		a.mechanism = client.ScramSHA256
	}
	a.mechanism = strings.ToUpper(a.mechanism)
	if a.mechanism != client.ScramSHA256 && a.mechanism != client.ScramSHA512 {
		return nil, usageErrorf("--sasl-mechanism %q: want SCRAM-SHA-256 or SCRAM-SHA-512", a.mechanism)
	}
	if a.password == "" {
		a.password = e.getenv("STRATA_PASSWORD")
	}
	if a.password == "" {
		pw, ok, err := e.promptPassword(fmt.Sprintf("password for %s: ", a.user))
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, usageErrorf("--user %s needs a password: pass --password or set STRATA_PASSWORD", a.user)
		}
		a.password = pw
	}
	e.auth = a // ask once per command
	return []client.Opt{client.SASL(a.mechanism, a.user, a.password)}, nil
}

// promptPassword reads a password from the terminal without echo; ok is
// false when stdin is not a terminal.
func (e *env) promptPassword(prompt string) (pw string, ok bool, err error) {
	f, isFile := e.stdin.(*os.File)
	if !isFile || !term.IsTerminal(int(f.Fd())) {
		return "", false, nil
	}
	fmt.Fprint(e.stderr, prompt)
	b, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(e.stderr)
	return string(b), true, err
}

// readNewPassword is a new user's password: --password, else asked twice
// on a terminal, else the first line of stdin.
func (e *env) readNewPassword(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	pw, ok, err := e.promptPassword("new password: ")
	if err != nil {
		return "", err
	}
	if ok {
		again, _, err := e.promptPassword("again: ")
		if err != nil {
			return "", err
		}
		if again != pw {
			return "", usageErrorf("the two passwords differ")
		}
	} else {
		line, err := bufio.NewReader(e.stdin).ReadString('\n')
		if err != nil && line == "" {
			return "", usageErrorf("no password: pass --password, type it on a terminal, or give it as stdin's first line")
		}
		pw = strings.TrimRight(line, "\r\n")
	}
	if pw == "" {
		return "", usageErrorf("the password is empty")
	}
	return pw, nil
}
