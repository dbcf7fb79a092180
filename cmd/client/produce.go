package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	"github.com/stratalog/strata/pkg/client"
	"github.com/stratalog/strata/pkg/record"
)

type produceFlags struct {
	key          string
	keySep       string
	delimiter    string
	valueFile    string
	headers      []string
	partition    int32
	compression  string
	acks         string
	verbose      bool
	maxLineBytes int
}

func newProduceCmd(e *env) *cobra.Command {
	var f produceFlags
	cmd := &cobra.Command{
		Use:   "produce TOPIC",
		Short: "Write records read from stdin, one per line (or per --delimiter)",
		Long: `Read stdin line by line and write each line as one record's value (the
line ending, \n or \r\n, is not part of it). Records are batched and sent
asynchronously; at end of input everything is flushed, and a summary
("produced N records to TOPIC") goes to stderr. Any failure stops the
input and is reported as one line that ends with how many records were
stored first ("stored 1234 of 2000 records to TOPIC, the rest were not
acknowledged"); the exit status is then non-zero.

Input: --delimiter D (kcat -D) splits stdin at D instead of at newlines,
so that values can hold newlines: \n, \t, \r, \0 (a NUL byte), \\ and
\xHH are understood, and D may be several bytes. --delimiter '' sends all
of stdin as one record, and --value-file PATH the whole file as one record
(stdin is then not read). --max-line-bytes bounds each record read.

Keys: --key gives every record the same key; --key-separator SEP (kcat -K)
splits each record at the first SEP into key and value (a record without
SEP gets a null key); SEP takes the same escapes as --delimiter. Records
with the same key go to the same partition. Without a key, records are
spread over partitions a batch at a time.

--partition P sends every record to partition P. --header k=v adds a
header to every record (repeatable).

Acknowledgements: -v prints "partition/offset" per record on stdout as it
is acknowledged; -o json prints one JSON object per record instead:
{"topic":..,"partition":..,"offset":..,"timestamp":..} (Unix ms).

--timeout bounds the delivery of each record, retries included (0 = no
limit): a broker lost mid-produce fails the records it holds after that
long, and the summary says how many were stored.`,
		Example: `  echo hello | strata produce events
  printf 'user1:login\nuser2:logout\n' | strata produce events --key-separator :
  strata produce events --key order-42 --header source=cli -v < orders.txt
  find . -print0 | strata produce paths --delimiter '\0'
  strata produce configs --key app.yaml --value-file ./app.yaml -o json
  cat big.log | strata produce logs --compression zstd --max-line-bytes 4194304`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.produce(cmd, args[0], &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.key, "key", "", "key for every record")
	fl.StringVarP(&f.keySep, "key-separator", "K", "", "split each record at the first SEP into key and value (kcat -K)")
	fl.StringVarP(&f.delimiter, "delimiter", "D", "", "record delimiter in the input (kcat -D; default a newline, \\n or \\r\\n); '' = all of stdin is one record")
	fl.StringVar(&f.valueFile, "value-file", "", "send the whole file as one record (stdin is not read)")
	fl.StringArrayVar(&f.headers, "header", nil, "header key=value for every record (repeatable)")
	fl.Int32Var(&f.partition, "partition", -1, "send every record to this partition")
	fl.Lookup("partition").DefValue = "by key, or spread" // not "-1", which --help would print
	fl.StringVar(&f.compression, "compression", "none", "batch compression: none, gzip, snappy, lz4, zstd")
	fl.StringVar(&f.acks, "acks", "quorum", "acknowledgement: quorum (all), leader or none")
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "print partition/offset of each record")
	fl.IntVar(&f.maxLineBytes, "max-line-bytes", 1<<20, "longest record read from the input, in bytes")
	return cmd
}

// ackJSON is one acknowledged record of "produce -o json".
type ackJSON struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Timestamp int64  `json:"timestamp"`
}

func (e *env) produce(cmd *cobra.Command, topic string, f *produceFlags) error {
	if f.key != "" && f.keySep != "" {
		return usageErrorf("--key and --key-separator exclude each other")
	}
	codec, ok := record.ParseCompression(f.compression)
	if !ok {
		return usageErrorf("--compression %q: want none, gzip, snappy, lz4 or zstd", f.compression)
	}
	acks, err := client.ParseAcks(f.acks)
	if err != nil {
		return usageErrorf("--acks %q: want quorum, leader or none", f.acks)
	}
	hdrs, err := parseHeaders(f.headers)
	if err != nil {
		return err
	}
	if f.maxLineBytes < 1 {
		return usageErrorf("--max-line-bytes must be positive")
	}
	delim := "\n"
	if cmd.Flags().Changed("delimiter") {
		if delim, err = unescape(f.delimiter); err != nil {
			return usageErrorf("--delimiter %q: %v", f.delimiter, err)
		}
	}
	keySep, err := unescape(f.keySep)
	if err != nil {
		return usageErrorf("--key-separator %q: %v", f.keySep, err)
	}
	if f.valueFile != "" && cmd.Flags().Changed("delimiter") {
		return usageErrorf("--value-file and --delimiter exclude each other: the file is one record")
	}
	opts := []client.ProducerOpt{client.Compression(codec), client.RequiredAcks(acks), client.DeliveryTimeout(e.retryTimeout())}
	if cmd.Flags().Changed("partition") {
		if f.partition < 0 {
			return usageErrorf("--partition %d is negative", f.partition)
		}
		opts = append(opts, client.RecordPartitioner(client.ManualPartitioner()))
	}
	var input io.Reader = e.stdin
	inputName := "stdin" // what the whole input is called, with --delimiter ''
	if f.valueFile != "" {
		fh, err := os.Open(f.valueFile)
		if err != nil {
			return usageErrorf("--value-file: %v", err)
		}
		defer fh.Close()
		input, delim, inputName = fh, "", "--value-file "+f.valueFile
	}

	c, err := e.newClient()
	if err != nil {
		return err
	}
	defer c.Close()
	p := c.NewProducer(opts...)

	ctx := cmd.Context()
	var (
		mu       sync.Mutex
		firstErr error
		acked    int64
		sent     int64
	)
	failed := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return firstErr != nil
	}
	enc := json.NewEncoder(e.stdout)
	onAck := func(r *client.Record, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			return
		}
		acked++
		switch {
		case e.output == "json":
			enc.Encode(ackJSON{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp.UnixMilli()})
		case f.verbose:
			fmt.Fprintf(e.stdout, "%d/%d\n", r.Partition, r.Offset)
		}
	}

	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	lines := readRecords(readCtx, input, delim, f.maxLineBytes, inputName)
	var readErr error
	for line := range lines {
		if line.err != nil {
			readErr = line.err
			break
		}
		if failed() {
			break
		}
		r := &client.Record{Topic: topic, Partition: f.partition, Value: line.b, Headers: hdrs}
		switch {
		case f.key != "":
			r.Key = []byte(f.key)
		case keySep != "":
			r.Key, r.Value = splitKey(line.b, keySep)
		}
		mu.Lock()
		sent++
		mu.Unlock()
		p.Produce(ctx, r, onAck)
	}
	if ctx.Err() != nil {
		readErr = ctx.Err()
	}

	// Deliver what was read even when interrupted: each record is bounded
	// by its delivery timeout (--timeout), so Close ends by then.
	closeErr := p.Close(context.WithoutCancel(ctx))

	mu.Lock()
	defer mu.Unlock()
	pe := &producedError{topic: topic, stored: acked, sent: sent}
	switch {
	case firstErr != nil:
		pe.err = onTopic(topic, firstErr)
	case readErr != nil:
		pe.err = readErr
	case closeErr != nil:
		pe.err = closeErr
	default:
		fmt.Fprintf(e.stderr, "produced %s to %s\n", plural(acked, "record"), topic)
		return nil
	}
	return pe
}

// producedError is a produce that failed after sending sent records, of
// which stored were acknowledged: the advice names the cause, then the
// counts.
type producedError struct {
	topic        string
	stored, sent int64
	err          error
}

func (p *producedError) Error() string { return p.err.Error() + p.counts() }
func (p *producedError) Unwrap() error { return p.err }

func (p *producedError) counts() string {
	switch {
	case p.sent == 0:
		return fmt.Sprintf("; no record was sent to %s", p.topic)
	case p.stored == 0:
		return fmt.Sprintf("; nothing was stored to %s (%s sent, not acknowledged)", p.topic, plural(p.sent, "record"))
	case p.stored < p.sent:
		return fmt.Sprintf("; stored %d of %s to %s, the rest were not acknowledged", p.stored, plural(p.sent, "record"), p.topic)
	}
	return fmt.Sprintf("; stored all %s sent to %s", plural(p.sent, "record"), p.topic)
}

// adviseProduced is the advice for a failed produce: the cause's own
// advice, then how many records were stored.
func adviseProduced(err error, e *env) (string, bool) {
	var pe *producedError
	if !errors.As(err, &pe) {
		return "", false
	}
	return adviseMultiline(pe.err, e) + pe.counts(), true
}

type line struct {
	b   []byte
	err error
}

// readRecords reads r on its own goroutine so that an interrupt is
// noticed while stdin is idle, split at delim: "\n" reads lines (a
// trailing \r is dropped too), "" the whole input, called name in errors,
// as one record. The goroutine ends at end of input, at an error, or when ctx ends and the
// consumer of the channel has gone.
func readRecords(ctx context.Context, r io.Reader, delim string, max int, name string) <-chan line {
	ch := make(chan line, 256)
	go func() {
		defer close(ch)
		br := bufio.NewReaderSize(r, 64<<10)
		for n := 1; ; n++ {
			var b []byte
			var err error
			what := fmt.Sprintf("input record %d", n)
			switch delim {
			case "\n":
				b, err = readLine(br, max)
				what = fmt.Sprintf("stdin line %d", n)
			case "":
				if n > 1 {
					return
				}
				b, err = readAll(br, max)
				what = name
				if errors.Is(err, errLineTooLong) {
					// Splitting with --delimiter is no advice here: the
					// whole input is meant as one record.
					err = fmt.Errorf("longer than --max-line-bytes %d, which bounds the one record it is sent as (raise it; the topic's max.message.bytes bounds a record too)", max)
				}
			default:
				b, err = readDelimited(br, []byte(delim), max)
			}
			if err == io.EOF {
				return
			}
			if err != nil {
				err = fmt.Errorf("%s: %w", what, err)
			}
			select {
			case ch <- line{b, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return ch
}

// readAll returns all of r as one record (empty input is one empty
// record).
func readAll(r io.Reader, max int) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, int64(max)+1))
	if err != nil {
		return nil, err
	}
	if len(b) > max {
		return nil, errLineTooLong
	}
	return b, nil
}

// readDelimited returns the bytes up to the next delim, without it, in a
// new slice; the last record may lack the delimiter. It returns io.EOF
// only when no bytes are left.
func readDelimited(r *bufio.Reader, delim []byte, max int) ([]byte, error) {
	last := delim[len(delim)-1]
	var out []byte
	for {
		chunk, err := r.ReadSlice(last)
		out = append(out, chunk...)
		if len(out) > max+len(delim) {
			return nil, errLineTooLong
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF && len(out) > 0:
			if len(out) > max {
				return nil, errLineTooLong
			}
			return out, nil
		case err != nil:
			return nil, err
		}
		if !bytes.HasSuffix(out, delim) {
			continue // the last byte of a multi-byte delimiter alone
		}
		out = out[:len(out)-len(delim)]
		if len(out) > max {
			return nil, errLineTooLong
		}
		if out == nil {
			out = []byte{}
		}
		return out, nil
	}
}

// unescape reads the escapes of --delimiter and --key-separator: \n \t
// \r \0 \\ and \xHH; any other backslash is itself.
func unescape(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		switch s[i] {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case '0':
			b.WriteByte(0)
		case '\\':
			b.WriteByte('\\')
		case 'x':
			if i+2 >= len(s) {
				return "", fmt.Errorf(`\x wants two hex digits`)
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return "", fmt.Errorf(`\x%s: want two hex digits`, s[i+1:i+3])
			}
			b.WriteByte(byte(v))
			i += 2
		default:
			b.WriteByte('\\')
			b.WriteByte(s[i])
		}
	}
	return b.String(), nil
}

var errLineTooLong = errors.New("longer than --max-line-bytes (raise it, or split the input with --delimiter)")

// readLine returns the next line without its \n or \r\n, in a new slice.
// The last line may lack a newline. It returns io.EOF only when no bytes
// are left.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	// One byte of slack for the "\r" of a CRLF ending, trimmed here.
	b, err := readDelimited(r, []byte("\n"), max+1)
	if err != nil {
		return nil, err
	}
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) > max {
		return nil, errLineTooLong
	}
	return b, nil
}

// splitKey splits line at the first sep into key and value; a line
// without sep is all value, with a null key (as kcat -K does).
func splitKey(line []byte, sep string) (key, value []byte) {
	k, v, ok := bytes.Cut(line, []byte(sep))
	if !ok {
		return nil, line
	}
	return k, v
}

func parseHeaders(hs []string) ([]record.Header, error) {
	var out []record.Header
	for _, h := range hs {
		k, v, ok := bytes.Cut([]byte(h), []byte("="))
		if !ok || len(k) == 0 {
			return nil, usageErrorf("--header %q: want key=value", h)
		}
		out = append(out, record.Header{Key: string(k), Value: v})
	}
	return out, nil
}
