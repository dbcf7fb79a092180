// Package docker runs the repository's docker-compose.yml, three
// strata-broker containers built FROM scratch, through network partitions
// and paused brokers, and checks the cluster from the outside: nothing
// acknowledged is lost and every replica holds the same log.
//
// The test builds the static binaries into bin/ (as `make build` does), then
// brings up a copy of docker-compose.yml under a random project name
// (strata-it-<random>) with the host ports made ephemeral, so it neither
// collides with a cluster started by `make cluster-up` nor with another run.
// Its Go client runs on the host; on the CLIENT listeners brokers
// advertise their service names (strata1:9290 ...), which the chaos test's
// resolver maps to the containers' addresses on the project network (not
// to the published ports, which Docker drops when a container is
// disconnected). TestExternalListener uses the EXTERNAL listeners instead,
// published on loopback and advertised as such (each at a free host port
// the test puts in place of 19290, 19390, 19490): the client library and
// the CLI produce and consume from the host with no resolver tricks.
// TestSecureCompose runs docker-compose.secure.yml the same way, with
// certificates made by `strata cert` in a temporary directory, through
// README's steps: the super user sets up a user and ACLs over mutual TLS,
// the user produces and consumes with SCRAM over TLS, and what it may not
// do, a client without the CA and a wrong password are refused.
// Everything is removed with `docker-compose down -v --rmi local` when the
// test ends, pass or fail.
//
// It is skipped only when no Docker daemon answers, or when the host cannot
// reach container addresses (Docker Desktop, rootless or remote daemons). It needs Compose:
// docker-compose (v1) or, failing that, the docker compose plugin (v2).
package docker
