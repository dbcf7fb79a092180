// Package chaos is Strata's fault suite, in the manner of Jepsen and
// etcd's robustness tests: a cluster of real strata-broker processes on
// loopback, workloads through the public client library, a nemesis that
// injects faults on a schedule drawn from a seed, and checkers that run
// after every heal and at the end and fail the run with the first
// counterexample.
//
// What a run does (Run, one Scenario):
//
//  1. Starts 3 brokers (each its own data dir and fixed ports; built once
//     with go build, without -race) and creates the workload's topics:
//     "log" (6 partitions, RF 3), "moves" (2 partitions, RF 2, which the
//     admin stream moves between brokers) and "register" (1 partition,
//     RF 3).
//  2. Starts the workloads together: three producers of globally unique
//     values (keyed and keyless; 1 KiB values, one in ten 16 KiB, in
//     bursts so the default 1 MiB batches fill; acks from a quorum; paced
//     to Scenario.Rate bytes a second in all), each recording every
//     operation's invoke and complete time, partition, offset, value and
//     outcome; a consumer group of two members processing "log" and
//     committing every second; an admin stream creating topics, altering
//     segment.bytes, transferring leaders and moving partitions; and the
//     register workload (append and read single offsets, checked for
//     linearizability with porcupine).
//  3. Runs the schedule: per step one fault (Fault: kill -9, SIGSTOP,
//     a segment bit-flipped or its tail cut while its broker is down, all
//     brokers killed and started at once; or, in the membership scenario,
//     a broker added or decommissioned), targeting the leader of a random
//     partition half of the time and a random broker otherwise; held for
//     the step's time, healed, then the cluster must recover (every
//     broker alive, every replica in sync) within 2 minutes, and the
//     checkers run: every acknowledged record at its offset (reading only
//     what is new), offsets strictly rising, replicas agreeing below the
//     high watermark (VerifyPartition), committed group offsets never
//     moving back.
//  4. At the end: the workloads stop, the group's lag must reach 0, every
//     partition is read again from the start and must match what was read
//     before, the register history must be linearizable, and no value
//     may be stored twice (the producers are idempotent, the default).
//
// Each run writes history.jsonl (one JSON object per operation and per
// fault window, {"t": unix nanoseconds, "kind": ...}), the brokers' logs,
// goroutine dumps of brokers that did not recover, and a timeline picture
// where test/chaos/timeline provides one. It prints "chaos: seed=N"
// first and a summary line per scenario.
//
// Running it: go test ./test/chaos runs CI's fault counts (see the
// scenarios in chaos_test.go); -chaos.seed=N (or CHAOS_SEED) replays a
// schedule, -chaos.seconds=N (CHAOS_SECONDS, or make chaos SECONDS=N)
// runs as long as asked, with outages past every timeout; -chaos.out
// (CHAOS_OUT) keeps the output; -chaos.faults and -chaos.rate override
// the step count and the produce rate.
//
// Faults built elsewhere (network partitions, full disks, clock skew)
// implement Fault and join a scenario's kinds.
package chaos
