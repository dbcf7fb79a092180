// Package cluster is how brokers find and watch each other, and how the
// cluster's shape is decided: gossip membership (hashicorp/memberlist), the
// bootstrap of the metadata quorum, and which brokers vote in it.
//
// Membership is a thin shell around memberlist: every broker gossips its
// node id and addresses (API, Raft, HTTP) as node metadata, and joins the
// seeds given with --join, retrying until one answers, so brokers may start
// in any order. The decisions (Bootstrap, Reconcile) are plain functions of
// the members seen and the quorum's configuration, tested without sockets.
//
// Usage:
//
//	m, err := cluster.Join(cluster.Config{NodeID: 1, GossipAddr: "127.0.0.1:7946", Seeds: seeds, Meta: meta})
//	defer m.Close()
//	for {
//		select {
//		case <-m.Changed():
//			members := m.Members()
//			...
//		case <-ctx.Done():
//		}
//	}
//
// Caller's duties:
//  1. Close the Membership: it owns memberlist's goroutines and a join loop.
//  2. Give every broker a unique node id; two brokers with one id fight over
//     one gossip name and one Raft identity.
package cluster
