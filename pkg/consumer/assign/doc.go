// Package assign decides which member of a consumer group consumes which
// partition: the broker-side assignment of KIP-848 style consumer groups
// (GroupHeartbeat in api/v1/strata.proto).
//
// It owns two pure decisions and nothing else:
//
//   - the target assignment: an Assignor maps the group's members, their
//     resolved subscriptions and the topics' partition counts (and, for
//     the sticky assignor, the previous target) to the partitions each
//     member should own once the group has settled. Three assignors,
//     chosen by the name a member sends: "uniform" (the default: sticky
//     and balanced, uniform.go), "range" and "roundrobin" (Kafka's
//     RangeAssignor and RoundRobinAssignor);
//   - reconciliation: Reconcile says what each member should own now, on
//     the way to the target: its target minus what another member still
//     owns. Members release what they are not told to own, and a partition
//     reaches its new owner only after its old owner reported it released.
//     So no partition is ever owned by two members, and a rebalance never
//     stops the members it does not concern.
//
// Everything here is deterministic (the same input gives the same output;
// nothing depends on map order or input order), runs no goroutines and
// reads no clock: the coordinator's state machine calls it, and replicas
// that replay the same inputs compute the same assignments. Group
// membership, sessions, epochs and the heartbeat protocol belong to the
// coordinator in pkg/consumer, not here.
//
// Usage, in the coordinator, when membership, a subscription or a
// partition count changes:
//
//	a, err := assign.New(group.Assignor) // "" = assign.Default
//	if err != nil { ... }                // ErrUnknownAssignor: tell the member
//	target, err := a.Assign(members, topics, group.Target)
//	if err != nil { ... }                // invalid input: a coordinator bug
//	group.Target = target
//
// and on every heartbeat:
//
//	tell := assign.Reconcile(group.Target, group.MayOwn)
//	respond(member, tell[member]) // and record it in group.MayOwn[member]
//
// Caller's duties:
//  1. Pass resolved subscriptions (a topic regex matched against the
//     existing topics) and the current partition counts from metadata;
//     subscribed topics missing from topics are ignored, not an error.
//  2. Keep the group's target and pass it as prev to the next Assign: the
//     uniform assignor's stickiness comes from it. Recompute the target
//     only when membership, a subscription, a partition count or the
//     assignor changes (recomputing is harmless: a settled target is a
//     fixed point, but it costs time).
//  3. When a static member restarts under a new member ID, move its
//     entry in the previous target to the new ID before calling Assign,
//     so it gets its partitions back (range and roundrobin order static
//     members by instance ID and need nothing).
//  4. Pass Reconcile, as owned, what each member may own: the partitions
//     it last reported, plus every partition it was told to own since
//     that report (it may have started consuming them). Drop a member
//     from owned only once it can no longer consume: it left, or its
//     session expired. Passing only reports would let a partition be told
//     to a second member before the first reported taking it.
//  5. Tell a member exactly its Reconcile list: never a partition that is
//     not in it.
//  6. Results belong to the caller; the package keeps no reference to its
//     arguments and never modifies them.
package assign
