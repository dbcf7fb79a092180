// Package client is the Go client for Strata: a producer that batches
// records per partition, a consumer that long-polls partition leaders, a
// group consumer that shares partitions with the other members of its
// consumer group, and an admin API for topics, groups and cluster
// metadata, all over Strata's gRPC API (api/v1).
//
// What it owns. A Client holds one gRPC connection per broker, made on
// first use, and a metadata cache (the Metadata RPC) that says how many
// partitions each topic has and which broker leads each one. Produce,
// fetch, ListOffsets and DeleteRecords requests for a partition go to its
// leader's connection. A NOT_LEADER reply that names the new leader
// reroutes the partition there and is retried at once; any other
// retriable error (apierr.Retriable: NOT_LEADER without a leader,
// UNAVAILABLE, STORAGE, a broker that cannot be reached) drops the cache
// and is retried with backoff: producers until the record's
// DeliveryTimeout, everything else until the client's RetryTimeout. Other
// errors are returned as *apierr.Error; match them with errors.Is against
// the apierr sentinels.
//
// Usage:
//
//	c, err := client.New([]string{"127.0.0.1:9290"})
//	if err != nil { ... }
//	defer c.Close()
//
//	_, err = c.Admin().CreateTopic(ctx, "events", 3, 1, nil)
//	d, err := c.Admin().DescribeTopic(ctx, "events")
//	for _, p := range d.Partitions { ... p.Partition, p.Leader, p.HighWatermark ... }
//
//	p := c.NewProducer(client.Linger(10 * time.Millisecond))
//	p.Produce(ctx, &client.Record{Topic: "events", Key: []byte("k"), Value: []byte("v")},
//		func(r *client.Record, err error) { ... r.Partition, r.Offset ... })
//	if err := p.ProduceSync(ctx, &client.Record{Topic: "events", Value: []byte("now")}).FirstErr(); err != nil { ... }
//	if err := p.Close(ctx); err != nil { ... } // flushes first
//
//	cs, err := c.NewConsumer("events", client.StartAt(client.FromEnd(10)))
//	for {
//		recs, err := cs.Poll(ctx)
//		if err != nil { ... }
//		for _, r := range recs { ... }
//	}
//
// One Consumer may read several topics: NewConsumerTopics, with
// TopicPartitions to limit some of them to some partitions. Seek, Pause,
// Resume, Positions and Lag name a partition by its TopicPartition, and
// every Record says its Topic.
//
//	cs, err := c.NewConsumerTopics([]string{"events", "audit"},
//		client.TopicPartitions(map[string][]int32{"audit": {0}}))
//	cs.Pause(client.TopicPartition{Topic: "events", Partition: 2})
//
// Admin. Client.Admin's calls take and return this package's own plain
// structs (TopicDetail, ClusterMetadata, GroupDetail, CommittedOffset,
// ACLBinding ...), copied from the API's messages: a caller needs no
// import of api/v1 or protobuf, only this package and, to match errors,
// pkg/apierr. Node ids are uint32, 0 meaning none; times are time.Time.
//
// Consumer groups. A GroupConsumer is a member of a consumer group: the
// group's coordinator (a broker; FindCoordinator names it) assigns it
// partitions of the topics it subscribes to (Topics, or TopicRegex),
// sharing them with the other members, and it commits how far it got.
// It joins and heartbeats on a goroutine of its own (KIP-848 style: one
// GroupHeartbeat call joins, heartbeats and leaves); Poll takes in the
// assignment's changes, running OnRevoked (then committing the revoked
// partitions, then releasing them) and OnAssigned (new partitions start
// at the group's committed offset, or by the ResetPolicy), and fetches.
// Auto-commit (every 5 s, on revoke and on Close) commits what the
// previous Poll returned, so delivery is at least once; AutoCommitMarks
// commits only what MarkRecords marked, DisableAutoCommit leaves it to
// CommitSync, CommitAsync and CommitRecords. A member the coordinator
// fences (UNKNOWN_MEMBER, FENCED_MEMBER_EPOCH) drops its partitions
// without committing (OnLost) and joins again.
//
//	gc, err := c.NewGroupConsumer("billing", client.Topics("events"),
//		client.OnRevoked(func(ctx context.Context, parts []client.TopicPartition) { ... }))
//	defer gc.Close(ctx) // commits, then leaves the group
//	for {
//		recs, err := gc.Poll(ctx) // records of the previous Poll count as processed
//		...
//	}
//
// TLS. Connections are plaintext unless TLS or TLSFiles is given; then
// every connection (the seeds and the brokers metadata names) uses TLS,
// and each broker's certificate must name the host dialled (or
// TLSFiles' serverName). TLSFiles reads the cluster's CA and an optional
// client certificate (for brokers that ask for one: mutual TLS) from PEM
// files and reads them again when they change:
//
//	c, err := client.New([]string{"strata1:9290"},
//		client.TLSFiles(tlsconfig.Files{CA: "certs/ca.crt", Cert: "certs/client.alice.crt", Key: "certs/client.alice.key"}, ""))
//
// A connection that fails because of TLS (an untrusted or expired
// certificate, a missing client certificate, a client and a listener that
// disagree about TLS) fails the call at once with a *TLSError whose Kind
// says which; it is not retried.
//
// Partitioning follows Kafka's Java client: a keyed record goes to
// toPositive(murmur2(key)) % partitions, so the same key lands on the same
// partition whichever client wrote it; keyless records stick to one
// partition per batch. RoundRobinPartitioner, StickyPartitioner and
// ManualPartitioner (honour Record.Partition) are the alternatives.
//
// The caller's duties:
//  1. Close what you make: Producer.Close to deliver buffered records
//     (Client.Close fails them), Consumer.Close, then Client.Close, which
//     stops every goroutine the package started.
//  2. Do not touch a Record after passing it to Produce until its callback
//     has run: the producer sets its Partition, Offset and Timestamp.
//  3. Keep producer callbacks short, and never call Flush, Close or
//     ProduceSync of the same producer from one: they wait for callbacks.
//  4. A retried produce stores each record once with the idempotent
//     producer (the default; Idempotent(false) makes it at least once).
//     A record whose callback failed may still have been stored (its
//     delivery timeout ended while the outcome was unknown). Expect
//     records skipped when a consumer's position is reset (see
//     ResetPolicy and OnReset).
//  5. Call Poll or Next from one goroutine per consumer.
//  6. Do not modify records returned by Poll: their Key, Value and
//     Headers may share memory with the fetch response.
//  7. Poll a GroupConsumer within its rebalance timeout: partitions the
//     coordinator takes away are released only by Poll, and a member
//     that holds them too long is fenced. With auto-commit, finish with
//     the records of one Poll before calling the next.
//  8. Close a GroupConsumer with its own Close(ctx), from the goroutine
//     that polls (not from a callback), before Client.Close: that
//     commits and leaves the group; Client.Close only stops it, and its
//     partitions wait for its session timeout.
package client
