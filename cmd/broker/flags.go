package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/stratalog/strata/pkg/broker"
)

func bindFlags(cmd *cobra.Command, cfg *broker.Config, configFile *string) {
	bindFlagSet(cmd.Flags(), cfg, configFile)
}

func bindFlagSet(f *pflag.FlagSet, cfg *broker.Config, configFile *string) {
	f.StringVar(configFile, "config", "", "YAML config file (keys are flag names)")
	f.Uint32Var(&cfg.NodeID, "node-id", cfg.NodeID, "this broker's node id (>= 1)")
	f.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for the broker's logs and metadata")
	f.StringVar(&cfg.APIAddr, "api-addr", cfg.APIAddr, "host:port of the client API listener; shorthand for --listeners CLIENT://host:port")
	f.StringSliceVar(&cfg.Listeners, "listeners", cfg.Listeners, "client listeners, NAME://host:port comma-separated, as Kafka's listeners, e.g. CLIENT://0.0.0.0:9290,EXTERNAL://0.0.0.0:19290; a client is told the addresses of the listener it came in on")
	f.StringSliceVar(&cfg.AdvertisedListeners, "advertised-listeners", cfg.AdvertisedListeners, "what clients of each listener are told to dial, NAME://host:port comma-separated, e.g. EXTERNAL://127.0.0.1:19290 (default: the bound address, 0.0.0.0 replaced by --advertise-host)")
	f.StringSliceVar(&cfg.ListenerSecurityProtocolMap, "listener-security-protocol-map", cfg.ListenerSecurityProtocolMap, "each listener's protocol, NAME:PROTOCOL comma-separated: PLAINTEXT, SSL (TLS with --tls-cert/--tls-key), SASL_PLAINTEXT or SASL_SSL; default PLAINTEXT, and a listener named after a protocol uses it")
	f.StringVar(&cfg.HTTPAddr, "http-addr", cfg.HTTPAddr, "host:port of the HTTP listener (/metrics, /healthz, /readyz, and /debug/pprof with --enable-pprof)")
	f.BoolVar(&cfg.HTTPTLS, "http-tls", cfg.HTTPTLS, "serve the HTTP listener over TLS with --tls-cert/--tls-key (no client certificates asked; probe it with \"strata-broker healthcheck --url https://...\")")
	f.BoolVar(&cfg.EnablePprof, "enable-pprof", cfg.EnablePprof, "serve Go's profiler at /debug/pprof on the HTTP listener (off by default: anyone reaching the port could read and load the broker)")
	f.StringVar(&cfg.RaftAddr, "raft-addr", cfg.RaftAddr, "host:port of the inter-broker listener: Raft traffic of every group and the brokers' internal service, authenticated both ways (--cluster-secret, or mutual TLS with --tls-cert, --tls-key and --tls-ca); its advertised host must be in a TLS broker certificate's SANs")
	f.StringVar(&cfg.GossipAddr, "gossip-addr", cfg.GossipAddr, "host:port for gossip membership (TCP and UDP)")
	f.StringVar(&cfg.AdvertiseHost, "advertise-host", cfg.AdvertiseHost, "host others reach this broker at, for listeners bound to 0.0.0.0")
	f.StringSliceVar(&cfg.Join, "join", cfg.Join, "gossip addresses (host:port) of other brokers, comma-separated; retried until one answers")
	f.IntVar(&cfg.BootstrapExpect, "bootstrap-expect", cfg.BootstrapExpect, "start a new cluster once this many brokers (started with the same value) see each other; 0 = single node without --join, else join an existing cluster")
	f.StringVar(&cfg.Fsync, "fsync", cfg.Fsync, "always: fsync before acknowledging (group commit); interval: acknowledge after write, fsync every --fsync-interval (a power loss loses up to that much)")
	f.DurationVar(&cfg.FsyncInterval, "fsync-interval", cfg.FsyncInterval, "fsync period with --fsync=interval")
	f.DurationVar(&cfg.RetentionCheckInterval, "retention-check-interval", cfg.RetentionCheckInterval, "how often partition leaders apply retention.ms/retention.bytes and schedule compaction")
	f.Int32Var(&cfg.OffsetsPartitions, "offsets-partitions", cfg.OffsetsPartitions, "partitions of the internal __consumer_offsets topic (consumer groups), created on first use")
	f.Int64Var(&cfg.CleanerBytesPerSecond, "cleaner-bytes-per-second", cfg.CleanerBytesPerSecond, "cap on the compaction cleaner's disk I/O (read+write) per broker; 0 = unlimited")
	f.Int64Var(&cfg.LogCopyBytesPerSecond, "log-copy-rate", cfg.LogCopyBytesPerSecond, "bytes per second this broker serves, all partitions together, to replicas copying its logs for a snapshot install (partition moves, replicas behind retention); 0 = unlimited")
	f.Int64Var(&cfg.ScrubBytesPerSecond, "scrub-rate", cfg.ScrubBytesPerSecond, "bytes per second the background scrub re-reads closed segments at, to find damage early; 0 = no scrub")
	f.DurationVar(&cfg.ScrubInterval, "scrub-interval", cfg.ScrubInterval, "time from one scrub pass's start to the next (the first starts a minute after the broker)")
	f.BoolVar(&cfg.AutoCreateTopics, "auto-create-topics", cfg.AutoCreateTopics, "create unknown topics on first produce, with --default-partitions")
	f.Int32Var(&cfg.DefaultPartitions, "default-partitions", cfg.DefaultPartitions, "partitions of auto-created topics")
	f.StringToStringVar(&cfg.TopicDefaults, "topic-default", cfg.TopicDefaults, "broker-wide topic config default, key=value (repeatable), e.g. --topic-default retention.ms=86400000")
	f.IntVar(&cfg.MaxRequestBytes, "max-request-bytes", cfg.MaxRequestBytes, "largest API message accepted, checked before allocating")
	f.Int64Var(&cfg.MaxInflightBytes, "max-inflight-bytes", cfg.MaxInflightBytes, "bytes of produce requests being appended, and separately of fetch responses being read, held at once; past it, requests wait (backpressure)")
	f.Uint32Var(&cfg.MaxStreamsPerConnection, "max-streams-per-connection", cfg.MaxStreamsPerConnection, "requests in flight on one client connection; clients hold back the rest (with --max-request-bytes, bounds what one connection can make the broker hold)")
	f.DurationVar(&cfg.MaxFetchWait, "max-fetch-wait", cfg.MaxFetchWait, "longest long-poll wait a fetch may ask for")
	f.DurationVar(&cfg.ProduceTimeout, "produce-timeout", cfg.ProduceTimeout, "longest wait for a produce's acks")
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "how long a graceful shutdown waits for in-flight requests")
	f.StringVar(&cfg.TLSCert, "tls-cert", cfg.TLSCert, "PEM certificate this broker presents on TLS listeners and to other brokers (make one with \"strata cert create-broker\"); reloaded when the file changes")
	f.StringVar(&cfg.TLSKey, "tls-key", cfg.TLSKey, "PEM private key of --tls-cert")
	f.StringVar(&cfg.TLSCA, "tls-ca", cfg.TLSCA, "PEM CA bundle that client and broker certificates are checked against")
	f.StringVar(&cfg.TLSClientAuth, "tls-client-auth", cfg.TLSClientAuth, "client certificates on TLS client listeners: none, request (verified if given) or require")
	f.StringVar(&cfg.ClusterSecret, "cluster-secret", cfg.ClusterSecret, "shared secret that brokers of one cluster prove to each other on the inter-broker listener, never sent (the same on every broker; make one with \"openssl rand -hex 32\"; prefer --cluster-secret-file or STRATA_CLUSTER_SECRET). Needed with --join or --bootstrap-expect > 1 unless inter-broker TLS is on; a broker alone makes its own in <data-dir>/cluster-secret")
	f.StringVar(&cfg.ClusterSecretFile, "cluster-secret-file", cfg.ClusterSecretFile, "file holding --cluster-secret")
	f.StringVar(&cfg.GossipKey, "gossip-key", cfg.GossipKey, "base64 key (16, 24 or 32 bytes) that encrypts gossip between brokers (memberlist keyring; \"openssl rand -base64 32\"); default: derived from the cluster secret")
	f.StringVar(&cfg.Authorizer, "authorizer", cfg.Authorizer, "when ACLs are enforced: auto (when a client listener authenticates: SASL_*, or SSL with --tls-client-auth require), acl (always) or none (never)")
	f.StringSliceVar(&cfg.SuperUsers, "super-users", cfg.SuperUsers, "principals that may do anything whatever the ACLs, comma-separated, e.g. User:admin,User:ops")
	f.DurationVar(&cfg.SASLSessionTTL, "sasl-session-ttl", cfg.SASLSessionTTL, "how long a SCRAM session token is valid; clients authenticate again by themselves")
	f.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error")
	f.DurationVar(&cfg.RaftHeartbeatTimeout, "raft-heartbeat-timeout", cfg.RaftHeartbeatTimeout, "how long a broker that stopped answering (cut off, paused) may stay silent before its partitions get new leaders (a broker whose process is gone is replaced at once); brokers pulse each other every third of it, and each partition's own Raft timers run 20x longer as a fallback")
}

// loadConfig layers, lowest first: built-in defaults, the YAML file,
// STRATA_* variables, flags given on the command line. cfg holds the
// defaults overridden by the flags when it is called.
func loadConfig(cmd *cobra.Command, file string, cfg *broker.Config) error {
	if file == "" {
		file = os.Getenv("STRATA_CONFIG")
	}
	final := broker.DefaultConfig()
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("--config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&final); err != nil && err != io.EOF {
			return fmt.Errorf("--config %s: %w", file, err)
		}
	}
	// Environment: parse each variable with its flag's own parser, through a
	// flag set bound to final.
	envFlags := pflag.NewFlagSet("env", pflag.ContinueOnError)
	var ignored string
	bindFlagSet(envFlags, &final, &ignored)
	var err error
	envFlags.VisitAll(func(fl *pflag.Flag) {
		env := "STRATA_" + strings.ToUpper(strings.ReplaceAll(fl.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok && err == nil && fl.Name != "config" {
			if serr := fl.Value.Set(v); serr != nil {
				err = fmt.Errorf("%s=%q: %v", env, v, serr)
			}
		}
	})
	if err != nil {
		return err
	}
	// Flags given on the command line win: copy those fields over, matched
	// by the yaml tag, which is the flag's name.
	src, dst := reflect.ValueOf(cfg).Elem(), reflect.ValueOf(&final).Elem()
	cmd.Flags().Visit(func(fl *pflag.Flag) {
		for i := 0; i < src.NumField(); i++ {
			if src.Type().Field(i).Tag.Get("yaml") == fl.Name {
				dst.Field(i).Set(src.Field(i))
			}
		}
	})
	*cfg = final
	return nil
}
