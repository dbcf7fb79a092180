package broker

import (
	"fmt"
	"net"
	"time"

	"github.com/stratalog/strata/pkg/metadata"
)

// Config is a broker's configuration. Every field has a flag in
// cmd/broker (the flag name is in the field's comment), an environment
// variable STRATA_<FLAG> with dashes as underscores, and a key in the YAML
// config file.
type Config struct {
	NodeID  uint32 `yaml:"node-id"`  // --node-id
	DataDir string `yaml:"data-dir"` // --data-dir
	// APIAddr is shorthand for Listeners: [CLIENT://APIAddr].
	APIAddr  string `yaml:"api-addr"`  // --api-addr
	HTTPAddr string `yaml:"http-addr"` // --http-addr
	// Listeners are the client listeners, NAME://host:port each, as
	// Kafka's listeners; AdvertisedListeners what clients that come in on
	// each are told to dial (default: the bound address, with
	// --advertise-host for 0.0.0.0); ListenerSecurityProtocolMap gives
	// each its protocol as NAME:PROTOCOL (listener.go).
	Listeners                   []string `yaml:"listeners"`                      // --listeners
	AdvertisedListeners         []string `yaml:"advertised-listeners"`           // --advertised-listeners
	ListenerSecurityProtocolMap []string `yaml:"listener-security-protocol-map"` // --listener-security-protocol-map
	// HTTPTLS serves the HTTP listener over TLS with --tls-cert/--tls-key.
	HTTPTLS    bool   `yaml:"http-tls"`    // --http-tls
	RaftAddr   string `yaml:"raft-addr"`   // --raft-addr: Raft traffic of every group on this broker
	GossipAddr string `yaml:"gossip-addr"` // --gossip-addr: memberlist (TCP and UDP)
	// AdvertiseHost replaces an unspecified bind host (0.0.0.0) in the
	// addresses other brokers and clients are told.
	AdvertiseHost string `yaml:"advertise-host"` // --advertise-host
	// Join lists gossip addresses of brokers already (or soon) running.
	Join []string `yaml:"join"` // --join
	// BootstrapExpect starts a new cluster once this many brokers see each
	// other. 0 with no --join means a single-node cluster (1).
	BootstrapExpect  int           `yaml:"bootstrap-expect"`   // --bootstrap-expect
	Fsync            string        `yaml:"fsync"`              // --fsync: always | interval
	FsyncInterval    time.Duration `yaml:"fsync-interval"`     // --fsync-interval
	AutoCreateTopics bool          `yaml:"auto-create-topics"` // --auto-create-topics
	// EnablePprof serves /debug/pprof on the HTTP listener. Off by
	// default: profiles show code paths and memory, and a CPU profile or
	// trace is work anyone reaching the port could make the broker do.
	EnablePprof bool `yaml:"enable-pprof"` // --enable-pprof
	// DefaultPartitions is used for auto-created topics.
	DefaultPartitions int32 `yaml:"default-partitions"` // --default-partitions
	// TopicDefaults are broker-wide topic config defaults (key=value).
	TopicDefaults map[string]string `yaml:"topic-default"` // --topic-default k=v
	// MaxRequestBytes bounds one gRPC message, checked before allocating.
	MaxRequestBytes int `yaml:"max-request-bytes"` // --max-request-bytes
	// MaxInflightBytes bounds the bytes of produce requests being
	// appended, and separately of fetch responses being read, that the
	// broker holds at once; past it, requests wait (backpressure) rather
	// than memory growing with the number of clients (internal/budget).
	MaxInflightBytes int64 `yaml:"max-inflight-bytes"` // --max-inflight-bytes
	// MaxStreamsPerConnection bounds the requests in flight on one client
	// connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS); the client
	// holds back the rest.
	MaxStreamsPerConnection uint32 `yaml:"max-streams-per-connection"` // --max-streams-per-connection
	// MaxFetchWait clamps a fetch's long-poll wait.
	MaxFetchWait time.Duration `yaml:"max-fetch-wait"` // --max-fetch-wait
	// ProduceTimeout is the default wait for a produce's acks.
	ProduceTimeout time.Duration `yaml:"produce-timeout"` // --produce-timeout
	// ShutdownTimeout bounds a graceful stop before connections are cut.
	ShutdownTimeout time.Duration `yaml:"shutdown-timeout"` // --shutdown-timeout
	LogLevel        string        `yaml:"log-level"`        // --log-level
	// RaftHeartbeatTimeout is how long a broker may stay silent before the
	// partitions it leads get new leaders (failover.go); brokers pulse
	// each other every third of it. Raft's own timers run raftTimerScale
	// times longer, as the fallback (see docs/operations.md).
	RaftHeartbeatTimeout time.Duration `yaml:"raft-heartbeat-timeout"` // --raft-heartbeat-timeout
	// RetentionCheckInterval is how often partition leaders check their
	// topics' retention and compaction settings, and every replica deletes
	// segments below the log start (Kafka's log.retention.check.interval.ms).
	RetentionCheckInterval time.Duration `yaml:"retention-check-interval"` // --retention-check-interval
	// CleanerBytesPerSecond caps the compaction cleaner's disk I/O (read
	// plus written) on this broker; 0 = unlimited.
	CleanerBytesPerSecond int64 `yaml:"cleaner-bytes-per-second"` // --cleaner-bytes-per-second
	// ScrubBytesPerSecond caps the background scrub, which re-reads every
	// closed segment to find damage early (scrub.go); 0 = no scrub.
	ScrubBytesPerSecond int64 `yaml:"scrub-rate"` // --scrub-rate
	// ScrubInterval is the time from one scrub pass's start to the next.
	ScrubInterval time.Duration `yaml:"scrub-interval"` // --scrub-interval
	// LogCopyBytesPerSecond caps the bytes this broker serves, all
	// partitions together, to replicas copying its logs for a snapshot
	// install (a partition move, a replica behind retention), as Kafka's
	// replication throttle does; 0 = unlimited.
	LogCopyBytesPerSecond int64 `yaml:"log-copy-rate"` // --log-copy-rate

	// OffsetsPartitions is the partition count of the internal
	// __consumer_offsets topic, created on the first group call; fixed
	// once created.
	OffsetsPartitions int32 `yaml:"offsets-partitions"` // --offsets-partitions

	// TLS files of this broker (issue 12): its certificate and key,
	// presented on every TLS listener and to other brokers, and the CA
	// that signs the certificates of clients and of the other brokers.
	// Reloaded when the files change (pkg/tlsconfig).
	TLSCert string `yaml:"tls-cert"` // --tls-cert
	TLSKey  string `yaml:"tls-key"`  // --tls-key
	TLSCA   string `yaml:"tls-ca"`   // --tls-ca
	// TLSClientAuth is none, request or require: whether TLS client
	// listeners ask for client certificates.
	TLSClientAuth string `yaml:"tls-client-auth"` // --tls-client-auth
	// ClusterSecret authenticates brokers to each other when inter-broker
	// TLS is off; ClusterSecretFile reads it from a file instead.
	ClusterSecret     string `yaml:"cluster-secret"`      // --cluster-secret
	ClusterSecretFile string `yaml:"cluster-secret-file"` // --cluster-secret-file
	// GossipKey (base64 of 16, 24 or 32 bytes) encrypts gossip with
	// memberlist's keyring.
	GossipKey string `yaml:"gossip-key"` // --gossip-key
	// Authorizer is auto, acl or none: when ACLs are enforced (authz.go).
	// SuperUsers may do anything; SASLSessionTTL is how long a SCRAM
	// session token is valid (authn.go).
	Authorizer     string        `yaml:"authorizer"`       // --authorizer
	SuperUsers     []string      `yaml:"super-users"`      // --super-users
	SASLSessionTTL time.Duration `yaml:"sasl-session-ttl"` // --sasl-session-ttl

	// Clock, when set, replaces time.Now for retention and compaction
	// decisions (tests). Not a flag.
	Clock func() time.Time `yaml:"-"`
}

// DefaultConfig is a single-node broker on loopback with its data under the
// current directory: what `strata-broker` with no flags runs.
func DefaultConfig() Config {
	return Config{
		NodeID:                  1,
		DataDir:                 "strata-data",
		APIAddr:                 "127.0.0.1:9290",
		HTTPAddr:                "127.0.0.1:9291",
		RaftAddr:                "127.0.0.1:9292",
		GossipAddr:              "127.0.0.1:9293",
		Fsync:                   "always",
		FsyncInterval:           time.Second,
		DefaultPartitions:       1,
		TopicDefaults:           map[string]string{},
		MaxRequestBytes:         64 << 20,
		MaxInflightBytes:        256 << 20,
		MaxStreamsPerConnection: 100,
		MaxFetchWait:            30 * time.Second,
		ProduceTimeout:          30 * time.Second,
		ShutdownTimeout:         10 * time.Second,
		LogLevel:                "info",
		TLSClientAuth:           "none",
		Authorizer:              AuthorizerAuto,
		SASLSessionTTL:          time.Hour,
		RaftHeartbeatTimeout:    time.Second,

		RetentionCheckInterval: 30 * time.Second,
		CleanerBytesPerSecond:  16 << 20,
		ScrubBytesPerSecond:    8 << 20,
		ScrubInterval:          24 * time.Hour,
		OffsetsPartitions:      8,
	}
}

// Expect is the number of brokers to wait for before bootstrapping a new
// cluster: --bootstrap-expect, or 1 for a broker started alone (no --join),
// or 0 (never bootstrap; wait to be added) for one that joins.
func (c Config) Expect() int {
	if c.BootstrapExpect > 0 {
		return c.BootstrapExpect
	}
	if len(c.Join) == 0 {
		return 1
	}
	return 0
}

// advertise turns a bound address into the one others should dial.
func (c Config) advertise(bound string) string {
	host, port, err := net.SplitHostPort(bound)
	if err != nil {
		return bound
	}
	if ip := net.ParseIP(host); (ip == nil || !ip.IsUnspecified()) && host != "" {
		return bound
	}
	h := c.AdvertiseHost
	if h == "" {
		h = "127.0.0.1"
	}
	return net.JoinHostPort(h, port)
}

// Validate checks the config; its messages name the flag to fix.
func (c Config) Validate() error {
	if c.NodeID == 0 {
		return fmt.Errorf("--node-id must be at least 1")
	}
	if c.DataDir == "" {
		return fmt.Errorf("--data-dir must not be empty")
	}
	if _, err := c.listeners(); err != nil {
		return err
	}
	if c.HTTPTLS && (c.TLSCert == "" || c.TLSKey == "") {
		return fmt.Errorf("--http-tls needs --tls-cert and --tls-key (make them with `strata cert create-broker`)")
	}
	for flag, addr := range map[string]string{"--http-addr": c.HTTPAddr, "--raft-addr": c.RaftAddr, "--gossip-addr": c.GossipAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("%s %q: want host:port (%v)", flag, addr, err)
		}
	}
	if c.BootstrapExpect < 0 {
		return fmt.Errorf("--bootstrap-expect must not be negative")
	}
	for _, j := range c.Join {
		if _, _, err := net.SplitHostPort(j); err != nil {
			return fmt.Errorf("--join %q: want host:port of another broker's --gossip-addr (%v)", j, err)
		}
	}
	switch c.Fsync {
	case "always", "interval":
	default:
		return fmt.Errorf("--fsync %q: want always or interval", c.Fsync)
	}
	if c.Fsync == "interval" && c.FsyncInterval <= 0 {
		return fmt.Errorf("--fsync-interval must be positive")
	}
	if err := metadata.ValidatePartitions(c.DefaultPartitions); err != nil {
		return fmt.Errorf("--default-partitions: %v", err)
	}
	if _, err := metadata.ParseTopicConfig(nil, c.TopicDefaults); err != nil {
		return fmt.Errorf("--topic-default: %v", err)
	}
	if c.MaxRequestBytes < 1<<20 {
		return fmt.Errorf("--max-request-bytes must be at least 1 MiB")
	}
	if c.MaxRequestBytes < metadata.MaxMaxMessageBytes+(1<<20) {
		return fmt.Errorf("--max-request-bytes must be at least %d (the largest max.message.bytes plus room)", metadata.MaxMaxMessageBytes+(1<<20))
	}
	if c.MaxInflightBytes < int64(c.MaxRequestBytes) {
		return fmt.Errorf("--max-inflight-bytes %d must be at least --max-request-bytes (%d), so that one request of the largest size fits", c.MaxInflightBytes, c.MaxRequestBytes)
	}
	if c.MaxStreamsPerConnection < 1 {
		return fmt.Errorf("--max-streams-per-connection must be at least 1")
	}
	if c.MaxFetchWait <= 0 || c.ProduceTimeout <= 0 || c.ShutdownTimeout <= 0 {
		return fmt.Errorf("--max-fetch-wait, --produce-timeout and --shutdown-timeout must be positive")
	}
	if c.RaftHeartbeatTimeout < 100*time.Millisecond || c.RaftHeartbeatTimeout > time.Minute {
		return fmt.Errorf("--raft-heartbeat-timeout %s: want 100ms to 1m", c.RaftHeartbeatTimeout)
	}
	if c.RetentionCheckInterval < 10*time.Millisecond {
		return fmt.Errorf("--retention-check-interval %s: want at least 10ms (Kafka's default is 5m, ours 30s)", c.RetentionCheckInterval)
	}
	if c.OffsetsPartitions < 1 || c.OffsetsPartitions > 1000 {
		return fmt.Errorf("--offsets-partitions %d: want 1 to 1000", c.OffsetsPartitions)
	}
	if c.CleanerBytesPerSecond < 0 {
		return fmt.Errorf("--cleaner-bytes-per-second %d: want 0 (unlimited) or more", c.CleanerBytesPerSecond)
	}
	if c.LogCopyBytesPerSecond < 0 || c.LogCopyBytesPerSecond > 0 && c.LogCopyBytesPerSecond < minLogCopyRate {
		return fmt.Errorf("--log-copy-rate %d: want 0 (unlimited) or at least %d bytes per second (a copy gives up on a stream silent for 30 s, and chunks are 1 MiB)",
			c.LogCopyBytesPerSecond, minLogCopyRate)
	}
	if c.ScrubBytesPerSecond < 0 {
		return fmt.Errorf("--scrub-rate %d: want 0 (no scrub) or more bytes per second", c.ScrubBytesPerSecond)
	}
	if c.ScrubBytesPerSecond > 0 && c.ScrubInterval < 10*time.Millisecond {
		return fmt.Errorf("--scrub-interval %s: want at least 10ms (default 24h)", c.ScrubInterval)
	}
	if err := c.validateSecurity(); err != nil {
		return err
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", c.LogLevel)
	}
	return c.validateInterbroker() // interbroker.go
}

// minLogCopyRate is the lowest --log-copy-rate: a 1 MiB chunk every 16 s,
// well inside the 30 s a copy waits for the next one.
const minLogCopyRate = 64 << 10
