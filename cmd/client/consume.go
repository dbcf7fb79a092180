package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/stratalog/strata/pkg/client"
)

type consumeFlags struct {
	group      string
	offset     string
	reset      string
	partitions []int32
	num        int
	idle       time.Duration
	format     string
}

func newConsumeCmd(e *env) *cobra.Command {
	var f consumeFlags
	cmd := &cobra.Command{
		Use:   "consume TOPIC",
		Short: "Read records and print them to stdout",
		Long: `Read records from every partition of TOPIC (or those given with
--partition) and print each with --format, or as one JSON object per line
with -o json. By default it follows the topic until interrupted (Ctrl-C);
--num stops after N records, --timeout after that long without a new one.

--offset says where each partition starts:
  start        the first stored record (default)
  end          only records produced from now on
  N            offset N
  -N           N records before the end
  @TIME        the first record at or after TIME, RFC 3339
               (@2026-01-02T15:04:05Z) or Unix milliseconds (@1700000000000)

--reset says what to do when a position is not stored (retention or
"strata topic delete-records" deleted it, or --offset N is past the end):
  earliest     resume at the first stored record (default)
  latest       resume at the end: only records produced from now on
  none         stop with an error that gives the valid offsets
A reset prints one line to stderr, naming the partition and both offsets.

--group G consumes as a member of consumer group G: the group's
coordinator assigns this member some of TOPIC's partitions (all of them
if it is alone; members joining or leaving move partitions between
them), each starts at the group's committed offset, and what is printed
is committed (every 5 s and when the command ends). --offset then says
where partitions with no committed offset start, earliest (start, the
default) or latest (end), and also where a position that is no longer
stored goes. --partition and --reset do not apply. Ctrl-C, --num and
--timeout leave the group cleanly, after committing.

--format is kcat's: %t topic, %p partition, %o offset, %T timestamp (Unix
ms), %k key, %v value, %K key length, %S value length, %h headers
(k=v,k=v), %% a percent sign; \n, \t and \r are newline, tab and return.`,
		Example: `  strata consume events
  strata consume events -n 10 --offset -10
  strata consume events --offset end --format '%p/%o %k=%v\n'
  strata consume events --partition 0,2 --offset @2026-01-02T15:04:05Z --timeout 5s
  strata consume events --offset 1200 --reset none
  strata consume events -o json | jq .value
  strata consume events --group billing
  strata consume events --group billing --offset latest --timeout 30s`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.consume(cmd.Context(), args[0], &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.offset, "offset", "start", "where to start: start, end, N, -N, @RFC3339 or @unix-ms")
	fl.StringVar(&f.reset, "reset", "earliest", "when a position is not stored: earliest, latest or none")
	fl.Int32SliceVar(&f.partitions, "partition", nil, "partitions to read, repeatable or comma-separated (default all)")
	fl.IntVarP(&f.num, "num", "n", 0, "stop after N records (0 = no limit)")
	fl.DurationVar(&f.idle, "timeout", 0, "stop after this long without a new record (0 = follow until interrupted)")
	fl.StringVarP(&f.format, "format", "f", defaultFormat, "kcat-style format of each record")
	fl.StringVarP(&f.group, "group", "g", "", "consume as a member of this consumer group (see below)")
	return cmd
}

func (e *env) consume(ctx context.Context, topic string, f *consumeFlags) error {
	start, err := client.ParseOffset(f.offset)
	if err != nil {
		return usageErrorf("--offset: %v", err)
	}
	format, err := parseFormat(f.format)
	if err != nil {
		return err
	}
	if f.num < 0 || f.idle < 0 {
		return usageErrorf("--num and --timeout must not be negative")
	}
	if f.group != "" {
		return e.consumeGroup(ctx, topic, f, start, format)
	}
	reset, err := parseReset(f.reset)
	if err != nil {
		return err
	}
	c, err := e.newClient()
	if err != nil {
		return err
	}
	defer c.Close()
	opts := []client.ConsumerOpt{
		client.StartAt(start),
		client.ResetPolicy(reset),
		client.OnReset(e.printReset("--reset " + f.reset)),
	}
	if len(f.partitions) > 0 {
		opts = append(opts, client.Partitions(f.partitions...))
	}
	cs, err := c.NewConsumer(topic, opts...)
	if err != nil {
		return usageErrorf("%v", err)
	}
	defer cs.Close()
	err = e.printRecords(ctx, cs.Poll, f, format, nil)
	return onTopic(topic, err)
}

// printReset reports a reset on stderr, naming the flag that chose it.
func (e *env) printReset(flag string) func(topic string, p int32, from, to int64) {
	return func(topic string, p int32, from, to int64) {
		fmt.Fprintf(e.stderr, "strata: %s/%d: offset %d is not stored; reset to %d (%s)\n", topic, p, from, to, flag)
	}
}

// printRecords polls and prints records until --num records, --timeout
// without one, or ctx ends (a clean stop: it returns nil). unprinted, if
// not nil, gets the records of the last poll that --num cut off.
func (e *env) printRecords(ctx context.Context, poll func(context.Context) ([]*client.Record, error), f *consumeFlags,
	format recordFormat, unprinted func([]*client.Record)) error {
	out := bufio.NewWriter(e.stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	var buf []byte
	seen := 0
	last := time.Now()
	for f.num == 0 || seen < f.num {
		pollCtx := ctx
		var cancel context.CancelFunc = func() {}
		if f.idle > 0 {
			pollCtx, cancel = context.WithDeadline(ctx, last.Add(f.idle))
		}
		recs, err := poll(pollCtx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil // interrupted: a clean stop
		case err != nil && f.idle > 0 && errors.Is(err, context.DeadlineExceeded):
			return nil // idle for --timeout
		case err != nil:
			return err
		}
		if f.num > 0 && len(recs) > f.num-seen {
			if unprinted != nil {
				unprinted(recs[f.num-seen:])
			}
			recs = recs[:f.num-seen]
		}
		for _, r := range recs {
			if e.output == "json" {
				if err := enc.Encode(toRecordJSON(r)); err != nil {
					return err
				}
			} else {
				buf = format.render(buf[:0], r)
				if _, err := out.Write(buf); err != nil {
					return err
				}
			}
			seen++
		}
		if len(recs) > 0 {
			last = time.Now()
			if err := out.Flush(); err != nil {
				return err
			}
		} else if f.idle > 0 && time.Since(last) >= f.idle {
			return nil // idle for --timeout
		}
	}
	return nil
}

// parseReset reads --reset. Kafka's names (earliest, latest, none) come
// first; start and end are accepted as in --offset.
func parseReset(s string) (client.Offset, error) {
	switch strings.ToLower(s) {
	case "earliest", "start":
		return client.Earliest(), nil
	case "latest", "end":
		return client.Latest(), nil
	case "none":
		return client.NoReset(), nil
	}
	return client.Offset{}, usageErrorf("--reset %q: want earliest, latest or none", s)
}

func toRecordJSON(r *client.Record) recordJSON {
	j := recordJSON{
		Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp.UnixMilli(),
		Key: bytesJSON(r.Key), Value: bytesJSON(r.Value), Headers: []headerJSON{},
	}
	for _, h := range r.Headers {
		j.Headers = append(j.Headers, headerJSON{h.Key, string(h.Value)})
	}
	return j
}

// bytesJSON shows bytes as a string; nil stays null. Invalid UTF-8 is
// replaced (JSON strings cannot hold arbitrary bytes).
func bytesJSON(b []byte) *string {
	if b == nil {
		return nil
	}
	s := string(b)
	if !utf8.ValidString(s) {
		s = string([]rune(s))
	}
	return &s
}
