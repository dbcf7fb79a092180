package main

import (
	"context"
	"fmt"

	"github.com/stratalog/strata/pkg/client"
)

// consumeGroup is "strata consume TOPIC --group G": a group member that
// prints what it is assigned and commits what it printed: auto-commit
// commits what each poll returned once the next poll begins (the records
// are printed by then), and Close the rest. Records a poll returned past
// --num are not printed: their partitions are moved back to them (Seek)
// so that Close does not commit them as read.
func (e *env) consumeGroup(ctx context.Context, topics []string, f *consumeFlags, start client.Offset, format recordFormat) error {
	if len(f.partitions) > 0 {
		return usageErrorf("--partition does not apply with --group: the group's coordinator assigns partitions")
	}
	if f.reset != "earliest" {
		return usageErrorf("--reset does not apply with --group: --offset earliest|latest says where partitions without a committed offset start, and where a position no longer stored goes")
	}
	if start != client.Earliest() && start != client.Latest() {
		return usageErrorf("--offset %q with --group: want earliest or latest (where partitions without a committed offset start; to move the group's offsets use: strata group seek %s)", f.offset, f.group)
	}
	c, err := e.newClient()
	if err != nil {
		return err
	}
	defer c.Close()
	// A member subscribed to a topic that does not exist is simply given
	// nothing; say so instead of waiting.
	if err := e.checkTopics(ctx, c, topics); err != nil {
		return err
	}
	var end *endOffsets
	if f.exitAtEnd {
		if end, err = e.findEnds(ctx, c, topics, nil); err != nil {
			return err
		}
	}
	gc, err := c.NewGroupConsumer(f.group,
		client.Topics(topics...),
		client.FetchOpts(client.ResetPolicy(start), client.OnReset(e.printReset("--offset "+f.offset))))
	if err != nil {
		return usageErrorf("%v", err)
	}
	if end != nil {
		end.positions = func() map[client.TopicPartition]int64 {
			pos := gc.Positions()
			if len(pos) == 0 {
				return nil // nothing assigned yet
			}
			return pos
		}
	}
	err = e.printRecords(ctx, gc.Poll, f, format, func(rest []*client.Record) {
		back := make(map[client.TopicPartition]int64)
		for _, r := range rest {
			tp := client.TopicPartition{Topic: r.Topic, Partition: r.Partition}
			if o, ok := back[tp]; !ok || r.Offset < o {
				back[tp] = r.Offset
			}
		}
		for tp, o := range back {
			gc.Seek(tp.Topic, tp.Partition, o) // owned: the poll just returned its records
		}
	}, end)
	// Leave even when interrupted: commit what was printed, then tell the
	// coordinator, within --timeout.
	closeCtx, cancel := e.adminCtx(context.WithoutCancel(ctx))
	defer cancel()
	if cerr := gc.Close(closeCtx); cerr != nil && err == nil {
		err = fmt.Errorf("leave group %q: %w", f.group, cerr)
	}
	return onTopics(topics, err)
}
