// Package integration runs real strata-broker processes (built from
// cmd/broker) and checks them from the outside through the client library:
// nothing acknowledged may be lost across kill -9 and restart.
//
// The tests build the binary once per run into a temporary directory, start
// brokers on 127.0.0.1 with OS-chosen ports, read the address from the
// broker's one stdout line, and stop every process they start by PID.
package integration
