package main

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/client"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// usageError is a mistake on the command line. withUsage marks the ones
// the command tree itself finds (an unknown command or flag, a missing
// argument): those are followed by the usage line (cli.go).
type usageError struct {
	msg       string
	withUsage bool
}

func (u *usageError) Error() string { return u.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// syntaxErrorf is a usageError printed with the usage line.
func syntaxErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...), withUsage: true}
}

// topicError remembers which topic a failed command was about, so the
// advice can name it.
type topicError struct {
	topic string
	err   error
	// existing: the command works on a topic that should exist (describe,
	// delete, ...): a missing one is a typo more likely than a topic to
	// create, so the advice lists the topics.
	existing bool
}

func (t *topicError) Error() string { return t.err.Error() }
func (t *topicError) Unwrap() error { return t.err }

func onTopic(topic string, err error) error {
	if err == nil {
		return nil
	}
	return &topicError{topic: topic, err: err}
}

// onExistingTopic is onTopic for commands on a topic that should exist.
func onExistingTopic(topic string, err error) error {
	if err == nil {
		return nil
	}
	return &topicError{topic: topic, err: err, existing: true}
}

// advise turns an error into the one line strata prints: the API's reason
// rewritten into what to do about it, where that is clear.
func advise(err error, e *env) string {
	return oneLine(adviseMultiline(err, e))
}

func adviseMultiline(err error, e *env) string {
	var te *topicError
	topic := "TOPIC"
	if errors.As(err, &te) {
		topic = te.topic
	}
	var ge *groupError
	group := "GROUP"
	if errors.As(err, &ge) {
		group = ge.group
	}
	var ue *usageError
	if errors.As(err, &ue) {
		if ue.withUsage {
			return ue.msg // printError adds the usage line
		}
		return ue.msg + " (see --help)"
	}
	if msg, ok := adviseProduced(err, e); ok { // produce.go
		return msg
	}
	if msg, ok := adviseTLS(err, &e.tls); ok {
		return msg
	}
	var ae *apierr.Error
	isAPI := errors.As(err, &ae)
	// The broker's messages for bad names and partition counts already
	// say what is allowed; they pass through unchanged.
	switch {
	case errors.Is(err, context.Canceled):
		return strings.Replace(err.Error(), context.Canceled.Error(), "interrupted", 1)
	case errors.Is(err, context.DeadlineExceeded) && !isAPI:
		return fmt.Sprintf("timed out after %s (raise --timeout, or check the brokers at %s)", e.timeout, strings.Join(e.brokers, ","))
	case errors.Is(err, apierr.ErrUnknownTopic) && te != nil && te.existing:
		return fmt.Sprintf("topic %q does not exist (list the topics with: strata topic list)", topic)
	case errors.Is(err, apierr.ErrUnknownTopic):
		return fmt.Sprintf("topic %q does not exist (create it with: strata topic create %s)", topic, topic)
	case errors.Is(err, apierr.ErrTopicExists):
		return fmt.Sprintf("topic %q already exists (see it with: strata topic describe %s)", topic, topic)
	case errors.Is(err, apierr.ErrUnknownPartition):
		return fmt.Sprintf("%v (list the partitions with: strata topic describe %s)", err, topic)
	case errors.Is(err, apierr.ErrUnknownGroup):
		return fmt.Sprintf("group %q does not exist (list the groups with: strata group list)", group)
	case errors.Is(err, apierr.ErrGroupNotEmpty):
		return fmt.Sprintf("group %q has active members: stop its consumers first (see them with: strata group describe %s)", group, group)
	case errors.Is(err, apierr.ErrInvalidConfig):
		return fmt.Sprintf("%v (the keys and their values are listed by: strata topic describe %s)", err, topic)
	case errors.Is(err, apierr.ErrInvalidReplication) && te != nil && !te.existing:
		// topic create's --replicas is a count; partition move's is a
		// list of node ids and broker decommission has none: their
		// messages already say what is wrong.
		return fmt.Sprintf("%v (give that with --replicas; see the brokers with: strata cluster info)", err)
	case errors.Is(err, apierr.ErrRecordTooLarge):
		// The broker's words name its internals (the batch's index in
		// the request, the record package). The producer sizes batches
		// under the limit and splits refused ones, so a refusal that
		// reaches here is one record over it.
		msg := batchTooLargeRE.ReplaceAllString(err.Error(), "$1: a record too large: its batch is $2 bytes, over the topic's limit of $3 (max.message.bytes)")
		return fmt.Sprintf("%s (raise the limit with: strata topic alter-config %s --set max.message.bytes=N)", msg, topic)
	case isAPI && errors.Is(err, apierr.ErrOffsetOutOfRange) && !strings.Contains(err.Error(), "valid offsets"):
		return fmt.Sprintf("%v (valid offsets are %d to %d)", err, ae.LogStartOffset, ae.HighWatermark)
	case errors.As(err, new(*client.AdvertisedUnreachableError)):
		// An address the brokers gave, not one from --brokers: the
		// error says which broker, where it came from and what to fix.
		return err.Error()
	case errors.As(err, new(*client.UnreachableError)):
		// Names the address and the cause (refused, unknown host, not a
		// Strata API, timed out) with what to check.
		var ue *client.UnreachableError
		errors.As(err, &ue)
		return ue.Error() + "; set --brokers or STRATA_BROKERS"
	case errors.Is(err, apierr.ErrUnavailable) && strings.Contains(err.Error(), "unreachable"):
		return fmt.Sprintf("cannot reach a broker at %s (is it running? set --brokers or STRATA_BROKERS)", strings.Join(e.brokers, ","))
	case (errors.Is(err, apierr.ErrUnavailable) || errors.Is(err, apierr.ErrNotLeader)) && strings.Contains(err.Error(), "retry in a moment"):
		// The broker said when to retry already ("retry in a moment").
		return err.Error()
	case errors.Is(err, apierr.ErrUnavailable), errors.Is(err, apierr.ErrNotLeader), errors.Is(err, client.ErrNoLeader),
		errors.Is(err, apierr.ErrNotCoordinator):
		return fmt.Sprintf("%v (the cluster is busy or recovering; try again shortly)", err)
	case errors.Is(err, apierr.ErrAuthentication) || status.Code(err) == codes.Unauthenticated:
		// gRPC's "rpc error: code = ... desc =" is not for users.
		msg := strings.Replace(err.Error(), "rpc error: code = Unauthenticated desc = ", "", 1)
		if strings.Contains(msg, "--user") {
			return msg // says what to pass already
		}
		return fmt.Sprintf("%s (give --user and --password, or STRATA_USER and STRATA_PASSWORD; users are made with: strata user create)", msg)
	case status.Code(err) == codes.Unimplemented:
		var se interface{ GRPCStatus() *status.Status }
		what := err.Error()
		if errors.As(err, &se) {
			what = se.GRPCStatus().Message()
		}
		return fmt.Sprintf("the broker does not support this command (%s): it runs an older Strata than this CLI; upgrade the brokers", what)
	}
	return err.Error()
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}

// batchTooLargeRE is the broker's refusal of a batch over max.message.bytes
// (pkg/partition's wrap of record.ErrTooLarge).
var batchTooLargeRE = regexp.MustCompile(`batch \d+ for (\S+/\d+): record: batch too large: (\d+) bytes, the limit is (\d+) \(max\.message\.bytes\)`)
