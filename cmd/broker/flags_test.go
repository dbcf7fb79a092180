package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/stratalog/strata/pkg/broker"
)

// parse runs the command's flag parsing and config layering and returns the
// config the broker would start with.
func parse(t *testing.T, args ...string) (broker.Config, error) {
	t.Helper()
	var got broker.Config
	cmd := newRootCmd(func(_ context.Context, c broker.Config) error { got = c; return c.Validate() })
	cmd.SetArgs(args)
	cmd.SetOut(&strings.Builder{})
	err := cmd.Execute()
	return got, err
}

func TestConfigLayers(t *testing.T) {
	file := filepath.Join(t.TempDir(), "broker.yaml")
	yaml := "data-dir: /from/file\nfsync: interval\nfsync-interval: 250ms\napi-addr: 127.0.0.1:7000\ntopic-default:\n  retention.ms: \"1000\"\n"
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("STRATA_API_ADDR", "127.0.0.1:7001")
	t.Setenv("STRATA_AUTO_CREATE_TOPICS", "true")
	cfg, err := parse(t, "--config", file, "--data-dir", "/from/flag")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != "/from/flag" {
		t.Errorf("flag should win over file: data-dir %q", cfg.DataDir)
	}
	if cfg.APIAddr != "127.0.0.1:7001" {
		t.Errorf("env should win over file: api-addr %q", cfg.APIAddr)
	}
	if cfg.Fsync != "interval" || cfg.FsyncInterval != 250*time.Millisecond || cfg.TopicDefaults["retention.ms"] != "1000" {
		t.Errorf("file values lost: %+v", cfg)
	}
	if !cfg.AutoCreateTopics {
		t.Error("env STRATA_AUTO_CREATE_TOPICS ignored")
	}
	if cfg.HTTPAddr != broker.DefaultConfig().HTTPAddr {
		t.Errorf("default lost: http-addr %q", cfg.HTTPAddr)
	}
}

func TestDefaultsNeedNoFlags(t *testing.T) {
	cfg, err := parse(t)
	if err != nil {
		t.Fatal(err)
	}
	d := broker.DefaultConfig()
	if cfg.DataDir != d.DataDir || cfg.APIAddr != "127.0.0.1:9290" || cfg.Fsync != "always" || cfg.AutoCreateTopics {
		t.Fatalf("defaults: %+v", cfg)
	}
}

func TestBadConfigNamesTheFlag(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("data-dri: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--fsync", "sometimes"}, nil, "--fsync"},
		{[]string{"--api-addr", "nope"}, nil, "--api-addr"},
		{[]string{"--log-copy-rate", "1000"}, nil, "--log-copy-rate"},
		{[]string{"--node-id", "0"}, nil, "--node-id"},
		{[]string{"--topic-default", "retention.ms=soon"}, nil, "--topic-default"},
		{[]string{"--config", bad}, nil, "data-dri"},
		{[]string{"--config", "/does/not/exist.yaml"}, nil, "--config"},
		{nil, map[string]string{"STRATA_FSYNC_INTERVAL": "often"}, "STRATA_FSYNC_INTERVAL"},
		{[]string{"extra-arg"}, nil, "unknown command"},
	}
	for _, c := range cases {
		for k, v := range c.env {
			t.Setenv(k, v)
		}
		_, err := parse(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v %v: got %v, want an error naming %s", c.args, c.env, err, c.want)
		}
		for k := range c.env {
			os.Unsetenv(k)
		}
	}
}

// Every flag is also a YAML key of the same name: loadConfig relies on it.
// Hidden debug flags (--debug-clock-offset-file) and --version are not
// configuration.
func TestEveryFlagHasAYAMLKey(t *testing.T) {
	tags := map[string]bool{}
	rt := reflect.TypeOf(broker.Config{})
	for i := 0; i < rt.NumField(); i++ {
		tags[rt.Field(i).Tag.Get("yaml")] = true
	}
	newRootCmd(nil).Flags().VisitAll(func(fl *pflag.Flag) {
		if fl.Name != "config" && fl.Name != "help" && fl.Name != "version" && !fl.Hidden && !tags[fl.Name] {
			t.Errorf("flag --%s has no broker.Config field with yaml:%q", fl.Name, fl.Name)
		}
	})
}

// Listener flags come from flags, STRATA_* variables and YAML like every
// other, and a bad one names its flag.
func TestListenerFlags(t *testing.T) {
	t.Setenv("STRATA_ADVERTISED_LISTENERS", "EXTERNAL://127.0.0.1:19290")
	cfg, err := parse(t, "--listeners", "CLIENT://0.0.0.0:9290,EXTERNAL://0.0.0.0:19290", "--listener-security-protocol-map", "CLIENT:PLAINTEXT,EXTERNAL:PLAINTEXT")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Listeners) != 2 || len(cfg.AdvertisedListeners) != 1 || len(cfg.ListenerSecurityProtocolMap) != 2 {
		t.Fatalf("listeners %v, advertised %v, map %v", cfg.Listeners, cfg.AdvertisedListeners, cfg.ListenerSecurityProtocolMap)
	}
	file := filepath.Join(t.TempDir(), "broker.yaml")
	yaml := "listeners: [\"CLIENT://127.0.0.1:9290\", \"SSL://127.0.0.1:9390\"]\nhttp-tls: true\n"
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Unsetenv("STRATA_ADVERTISED_LISTENERS")
	_, err = parse(t, "--config", file)
	if err == nil || !strings.Contains(err.Error(), "--tls-cert") {
		t.Fatalf("SSL listener without --tls-cert: got %v, want an error naming --tls-cert", err)
	}
	if _, err := parse(t, "--listeners", "CLIENT://127.0.0.1:9290", "--api-addr", "127.0.0.1:7000"); err == nil || !strings.Contains(err.Error(), "--api-addr") {
		t.Fatalf("--api-addr and --listeners disagreeing: got %v", err)
	}
}

// No flag's usage has a backquote: pflag takes the first backquoted word
// as the name of the flag's value, so --help printed "--cluster-secret
// openssl rand -hex 32" and "--http-tls strata-broker healthcheck --url
// https://..." for a boolean.
func TestFlagUsageHasNoBackquote(t *testing.T) {
	newRootCmd(nil).Flags().VisitAll(func(fl *pflag.Flag) {
		if strings.Contains(fl.Usage, "`") {
			t.Errorf("--%s: usage has a backquote, which --help shows as the value's name: %s", fl.Name, fl.Usage)
		}
	})
}

// A mistyped flag or command says what it may have meant, and is a usage
// error (main prints the usage line after it).
func TestTypoSuggestions(t *testing.T) {
	for args, want := range map[string]string{
		"--data-dri x":        `unknown flag: --data-dri (did you mean --data-dir?)`,
		"verfy":               `unknown command "verfy" for "strata-broker" (did you mean "verify"?)`,
		"healthcheck --ulr x": `unknown flag: --ulr (did you mean --url?)`,
		"extra":               `unknown command "extra" for "strata-broker"`,
	} {
		_, err := parse(t, strings.Fields(args)...)
		var ue *usageError
		if err == nil || err.Error() != want || !errors.As(err, &ue) {
			t.Errorf("strata-broker %s: %v, want the usage error %q", args, err, want)
		}
	}
}
