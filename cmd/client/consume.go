package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/stratalog/strata/pkg/apierr"
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
	exitAtEnd  bool
	encoding   string
}

func newConsumeCmd(e *env) *cobra.Command {
	var f consumeFlags
	cmd := &cobra.Command{
		Use:   "consume TOPIC...",
		Short: "Read records and print them to stdout",
		Long: `Read records from every partition of TOPIC (or those given with
--partition) and print each with --format, or as one JSON object per line
with -o json. Several topics are read together, as rpk does (their records
interleave; %t in --format prints each record's topic); --partition then
does not apply. By default it follows the topic until interrupted (Ctrl-C);
--num stops after N records, --timeout after that long without a new one
(its own meaning here: an idle limit), and --exit-at-end (-e, as kcat -e
and rpk -o :end) once every partition is read up to the end offset it had
when the command started (exit 0; records produced since are not read;
with --group, the partitions assigned to this member).

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

--format takes kcat's verbs: %t topic, %p partition, %o offset, %T
timestamp (Unix ms), %k key, %s value, %K key length, %S value length, %h
headers (k=v,k=v), %% a percent sign; and rpk's where they do not clash:
%v value, %V value length, %d timestamp, %H number of headers (%T is
kcat's timestamp, not rpk's topic length). \n, \t and \r are newline, tab
and return. Keys and values are written as their bytes.

-o json writes one object per record. JSON strings hold text only, so
--encoding says how keys, values and header values appear there: text
(default) writes them as strings when they are valid UTF-8, and in base64
otherwise, marked per record with "key_encoding": "base64" or
"value_encoding": "base64" (a header gets "value_encoding"); base64 or hex
encode every key and value, each marked. Nothing is replaced or lost.`,
		Example: `  strata consume events
  strata consume events -n 10 --offset -10
  strata consume events --offset end --format '%p/%o %k=%v\n'
  strata consume events --partition 0,2 --offset @2026-01-02T15:04:05Z --timeout 5s
  strata consume events --offset 1200 --reset none
  strata consume events -e -o json --encoding base64 > events.jsonl
  strata consume events -f '%t/%p/%o %T %k=%s (%S bytes)\n' -e
  strata consume events -o json | jq .value
  strata consume events audit -e -f '%t/%p@%o %s\n'
  strata consume events --group billing
  strata consume events --group billing --offset latest --timeout 30s`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return syntaxErrorf("consume needs a topic: strata consume TOPIC...")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			// --group '' (an unset variable in a script) must not read
			// as no group: the run would commit nothing, silently.
			if cmd.Flags().Changed("group") && f.group == "" {
				return usageErrorf("--group is empty: give a group name, or leave --group out to consume without a group")
			}
			return e.consume(cmd.Context(), args, &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.offset, "offset", "start", "where to start: start, end, N, -N, @RFC3339 or @unix-ms")
	fl.StringVar(&f.reset, "reset", "earliest", "when a position is not stored: earliest, latest or none")
	fl.Int32SliceVar(&f.partitions, "partition", nil, "partitions to read, repeatable or comma-separated")
	fl.Lookup("partition").DefValue = "all" // not "[]", which --help would print
	fl.IntVarP(&f.num, "num", "n", 0, "stop after N records (0 = no limit)")
	fl.DurationVar(&f.idle, "timeout", 0, "stop after this long without a new record (0 = follow until interrupted)")
	fl.StringVarP(&f.format, "format", "f", defaultFormat, "format of each record: kcat's verbs, and rpk's %v %V %d %H (see below)")
	fl.BoolVarP(&f.exitAtEnd, "exit-at-end", "e", false, "stop at the end offsets found at start, exit 0")
	fl.StringVar(&f.encoding, "encoding", "text", "keys and values in -o json: text (base64 when not UTF-8, marked), base64 or hex")
	fl.StringVarP(&f.group, "group", "g", "", "consume as a member of this consumer group (see below)")
	return cmd
}

func (e *env) consume(ctx context.Context, topics []string, f *consumeFlags) error {
	start, err := client.ParseOffset(f.offset)
	if err != nil {
		return usageErrorf("--offset: %v", err)
	}
	format, err := parseFormat(f.format)
	if err != nil {
		return err
	}
	if f.num < 0 {
		return usageErrorf("--num %d: want 0 (no limit) or more", f.num)
	}
	if f.idle < 0 {
		return usageErrorf("--timeout %s: want 0 (follow until interrupted) or more, e.g. 5s", f.idle)
	}
	for _, p := range f.partitions {
		if p < 0 {
			return usageErrorf("--partition %d is negative: partitions are numbered from 0", p)
		}
	}
	for i, t := range topics {
		if slices.Contains(topics[:i], t) {
			return usageErrorf("topic %q is given twice", t)
		}
	}
	if len(f.partitions) > 0 && len(topics) > 1 {
		return usageErrorf("--partition applies to one topic; consume the topics one at a time to choose partitions")
	}
	switch f.encoding {
	case "text", "base64", "hex":
	default:
		return usageErrorf("--encoding %q: want text, base64 or hex", f.encoding)
	}
	if f.group != "" {
		if err := checkGroupName(f.group); err != nil {
			return err
		}
		return e.consumeGroup(ctx, topics, f, start, format)
	}
	reset, err := parseReset(f.reset)
	if err != nil {
		return err
	}
	// A consume waits out outages itself (printRecords): each poll's
	// retries end after a few seconds so that it can say so soon.
	c, err := e.newClient(client.RetryTimeout(consumeRetry))
	if err != nil {
		return err
	}
	defer c.Close()
	if len(topics) > 1 {
		// The consumer's "does not exist" would not say which topic.
		if err := e.checkTopics(ctx, c, topics); err != nil {
			return err
		}
	}
	opts := []client.ConsumerOpt{
		client.StartAt(start),
		client.ResetPolicy(reset),
		client.OnReset(e.printReset("--reset " + f.reset)),
	}
	if len(f.partitions) > 0 {
		opts = append(opts, client.Partitions(f.partitions...))
	}
	cs, err := c.NewConsumerTopics(topics, opts...)
	if err != nil {
		return usageErrorf("%v", err)
	}
	defer cs.Close()
	var end *endOffsets
	if f.exitAtEnd {
		if end, err = e.findEnds(ctx, c, topics, f.partitions); err != nil {
			return err
		}
		end.positions = func() map[client.TopicPartition]int64 {
			pos := cs.Positions()
			if len(pos) == 0 {
				return nil // not started: no partition has been read
			}
			return pos
		}
	}
	err = e.printRecords(ctx, cs.Poll, f, format, nil, end)
	return onTopics(topics, err)
}

// onTopics is onTopic for a command on one topic or several: with
// several, the error names its topic itself (checkTopics found the
// missing ones first).
func onTopics(topics []string, err error) error {
	if len(topics) != 1 {
		return err
	}
	return onTopic(topics[0], err)
}

// checkTopics says which of topics does not exist (or may not be
// described), before a consumer of several would say only "a topic".
func (e *env) checkTopics(ctx context.Context, c *client.Client, topics []string) error {
	for _, t := range topics {
		actx, cancel := e.adminCtx(ctx)
		_, err := c.Admin().DescribeTopic(actx, t)
		cancel()
		if err != nil {
			return onTopic(t, err)
		}
	}
	return nil
}

// endOffsets are where --exit-at-end stops: each partition's end offset
// when the command started.
type endOffsets struct {
	ends map[client.TopicPartition]int64
	// positions are the consumer's next offsets of the partitions it
	// reads (a group member: those it owns); nil until it has some.
	positions func() map[client.TopicPartition]int64
}

// findEnds reads the end offset of each of parts of each of topics
// (every partition when parts is empty).
func (e *env) findEnds(ctx context.Context, c *client.Client, topics []string, parts []int32) (*endOffsets, error) {
	actx, cancel := e.adminCtx(ctx)
	defer cancel()
	out := &endOffsets{ends: make(map[client.TopicPartition]int64)}
	for _, topic := range topics {
		ps := parts
		if len(ps) == 0 {
			d, err := c.Admin().DescribeTopic(actx, topic)
			if err != nil {
				return nil, onTopic(topic, err)
			}
			for _, p := range d.Partitions {
				ps = append(ps, p.Partition)
			}
		}
		ends, err := c.Admin().ResolveOffset(actx, topic, ps, client.Latest())
		if err != nil {
			return nil, onTopic(topic, err)
		}
		for p, o := range ends {
			out.ends[client.TopicPartition{Topic: topic, Partition: p}] = o
		}
	}
	return out, nil
}

// reached says whether every partition read has been read to its end.
func (o *endOffsets) reached() bool {
	pos := o.positions()
	if pos == nil {
		return false
	}
	for tp, at := range pos {
		if end, ok := o.ends[tp]; ok && at < end {
			return false
		}
	}
	return true
}

// past says whether r was produced after the command started.
func (o *endOffsets) past(r *client.Record) bool {
	end, ok := o.ends[client.TopicPartition{Topic: r.Topic, Partition: r.Partition}]
	return !ok || r.Offset >= end
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
	format recordFormat, unprinted func([]*client.Record), end *endOffsets) error {
	out := bufio.NewWriter(e.stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	var buf []byte
	seen := 0
	last := time.Now()
	connected := false // a poll succeeded: later outages are waited out
	var lost time.Time // when the brokers were lost (zero: not lost)
	for f.num == 0 || seen < f.num {
		if end != nil && end.reached() {
			return nil
		}
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
		case err != nil && connected && lostBrokers(err):
			// The brokers were reached before: they are restarting or
			// cut off. Say so once, keep trying, say when they are back.
			if lost.IsZero() {
				lost = time.Now()
				fmt.Fprintf(e.stderr, "strata: lost the brokers (%v); still trying, Ctrl-C to stop\n", oneLine(err.Error()))
			}
			t := time.NewTimer(time.Second)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			continue
		case err != nil:
			return err
		}
		connected = true
		if !lost.IsZero() {
			fmt.Fprintf(e.stderr, "strata: reached the brokers again after %s; consuming\n", time.Since(lost).Round(100*time.Millisecond))
			lost = time.Time{}
		}
		if end != nil {
			// Records produced since the start are not printed; a group
			// member moves back to them (unprinted) so they are not
			// committed as read.
			var past []*client.Record
			for _, r := range recs {
				if end.past(r) {
					past = append(past, r)
				}
			}
			if len(past) > 0 {
				recs = slices.DeleteFunc(recs, end.past)
				if unprinted != nil {
					unprinted(past)
				}
			}
		}
		if f.num > 0 && len(recs) > f.num-seen {
			if unprinted != nil {
				unprinted(recs[f.num-seen:])
			}
			recs = recs[:f.num-seen]
		}
		for _, r := range recs {
			if e.output == "json" {
				if err := enc.Encode(toRecordJSON(r, f.encoding)); err != nil {
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

func toRecordJSON(r *client.Record, encoding string) recordJSON {
	j := recordJSON{
		Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp.UnixMilli(), Headers: []headerJSON{},
	}
	j.Key, j.KeyEncoding = encodeBytes(r.Key, encoding)
	j.Value, j.ValueEncoding = encodeBytes(r.Value, encoding)
	for _, h := range r.Headers {
		v, enc := encodeBytes(h.Value, encoding)
		if v == nil {
			v = new(string)
		}
		j.Headers = append(j.Headers, headerJSON{Key: h.Key, Value: *v, ValueEncoding: enc})
	}
	return j
}

// encodeBytes writes b for JSON with --encoding: as a string when the
// encoding is text and b is valid UTF-8 (enc is then ""), else in base64
// or hex, named by enc. nil stays null.
func encodeBytes(b []byte, encoding string) (s *string, enc string) {
	if b == nil {
		return nil, ""
	}
	var out string
	switch {
	case encoding == "hex":
		out, enc = hex.EncodeToString(b), "hex"
	case encoding == "base64" || !utf8.Valid(b):
		out, enc = base64.StdEncoding.EncodeToString(b), "base64"
	default:
		out = string(b)
	}
	return &out, enc
}

// checkGroupName refuses, before a group is made, names that would not
// read back: "strata group" prints groups in space-separated columns and
// takes them as one argument.
func checkGroupName(g string) error {
	if len(g) > 249 {
		return usageErrorf("--group: %d characters is too long (at most 249)", len(g))
	}
	for _, r := range g {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !strings.ContainsRune("._-:", r) {
			return usageErrorf("--group %q: %q is not allowed; use letters, digits, '.', '_', '-' and ':'", g, r)
		}
	}
	return nil
}

// consumeRetry bounds one poll's retries: a consume that lost its brokers
// says so after this long, then keeps trying.
const consumeRetry = 3 * time.Second

// lostBrokers reports whether err is a consume's brokers being gone for
// now (down, restarting, cut off, electing a leader), which a consume that
// had reached them waits out.
func lostBrokers(err error) bool {
	return errors.Is(err, apierr.ErrUnavailable) || errors.Is(err, apierr.ErrNotLeader) || errors.Is(err, client.ErrNoLeader) ||
		errors.As(err, new(*client.UnreachableError)) || errors.As(err, new(*client.AdvertisedUnreachableError))
}
