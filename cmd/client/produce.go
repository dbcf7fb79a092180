package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/stratalog/strata/pkg/client"
	"github.com/stratalog/strata/pkg/record"
)

type produceFlags struct {
	key          string
	keySep       string
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
		Short: "Write records read from stdin, one per line",
		Long: `Read stdin line by line and write each line as one record's value (the
line ending, \n or \r\n, is not part of it). Records are batched and sent
asynchronously; at end of input everything is flushed, and a summary
("produced N records to TOPIC") goes to stderr. Any failure stops the
input, is reported as one line, and makes the exit status non-zero.

Keys: --key gives every record the same key; --key-separator SEP splits
each line at the first SEP into key and value (a line without SEP gets a
null key). Records with the same key go to the same partition. Without a
key, records are spread over partitions a batch at a time.

--partition P sends every record to partition P. --header k=v adds a
header to every record (repeatable). -v prints "partition/offset" per
record on stdout as it is acknowledged.`,
		Example: `  echo hello | strata produce events
  printf 'user1:login\nuser2:logout\n' | strata produce events --key-separator :
  strata produce events --key order-42 --header source=cli -v < orders.txt
  cat big.log | strata produce logs --compression zstd --max-line-bytes 4194304`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.produce(cmd, args[0], &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.key, "key", "", "key for every record")
	fl.StringVar(&f.keySep, "key-separator", "", "split each line at the first SEP into key and value")
	fl.StringArrayVar(&f.headers, "header", nil, "header key=value for every record (repeatable)")
	fl.Int32Var(&f.partition, "partition", -1, "send every record to this partition (default: by key, or spread)")
	fl.StringVar(&f.compression, "compression", "none", "batch compression: none, gzip, snappy, lz4, zstd")
	fl.StringVar(&f.acks, "acks", "quorum", "acknowledgement: quorum (all), leader or none")
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "print partition/offset of each record")
	fl.IntVar(&f.maxLineBytes, "max-line-bytes", 1<<20, "longest line accepted, in bytes")
	return cmd
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
	opts := []client.ProducerOpt{client.Compression(codec), client.RequiredAcks(acks)}
	if cmd.Flags().Changed("partition") {
		if f.partition < 0 {
			return usageErrorf("--partition %d is negative", f.partition)
		}
		opts = append(opts, client.RecordPartitioner(client.ManualPartitioner()))
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
		acked    int
	)
	failed := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return firstErr != nil
	}
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
		if f.verbose {
			fmt.Fprintf(e.stdout, "%d/%d\n", r.Partition, r.Offset)
		}
	}

	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	lines := readLines(readCtx, e.stdin, f.maxLineBytes)
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
		case f.keySep != "":
			r.Key, r.Value = splitKey(line.b, f.keySep)
		}
		p.Produce(ctx, r, onAck)
	}
	if ctx.Err() != nil {
		readErr = ctx.Err()
	}

	// Deliver what was read even when interrupted, within a bound.
	flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	closeErr := p.Close(flushCtx)

	mu.Lock()
	defer mu.Unlock()
	switch {
	case firstErr != nil:
		return onTopic(topic, fmt.Errorf("produced %s to %s, then: %w", plural(int64(acked), "record"), topic, firstErr))
	case readErr != nil:
		return fmt.Errorf("produced %s to %s, then stopped: %w", plural(int64(acked), "record"), topic, readErr)
	case closeErr != nil:
		return fmt.Errorf("produced %s to %s, then: %w", plural(int64(acked), "record"), topic, closeErr)
	}
	fmt.Fprintf(e.stderr, "produced %s to %s\n", plural(int64(acked), "record"), topic)
	return nil
}

type line struct {
	b   []byte
	err error
}

// readLines reads r on its own goroutine so that an interrupt is noticed
// while stdin is idle. The goroutine ends at end of input, at an error,
// or when ctx ends and the consumer of the channel has gone.
func readLines(ctx context.Context, r io.Reader, max int) <-chan line {
	ch := make(chan line, 256)
	go func() {
		defer close(ch)
		br := bufio.NewReaderSize(r, 64<<10)
		for n := 1; ; n++ {
			b, err := readLine(br, max)
			if err == io.EOF {
				return
			}
			if err != nil {
				err = fmt.Errorf("stdin line %d: %w", n, err)
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

var errLineTooLong = errors.New("longer than --max-line-bytes")

// readLine returns the next line without its \n or \r\n, in a new slice.
// The last line may lack a newline. It returns io.EOF only when no bytes
// are left.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var out []byte
	for {
		chunk, err := r.ReadSlice('\n')
		out = append(out, chunk...)
		if len(out) > max+2 {
			return nil, errLineTooLong
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF && len(out) > 0:
			err = nil
		case err != nil:
			return nil, err
		}
		out = bytes.TrimSuffix(out, []byte("\n"))
		out = bytes.TrimSuffix(out, []byte("\r"))
		if len(out) > max {
			return nil, errLineTooLong
		}
		if out == nil {
			out = []byte{}
		}
		return out, nil
	}
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
