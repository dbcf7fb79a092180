package transport

import (
	"fmt"

	"github.com/hashicorp/raft"
)

// AppendEntries bounded in bytes.
//
// Raft builds an AppendEntries request from up to MaxAppendEntries entries
// with no bound on their bytes, and in Strata an entry is a whole producer
// batch (1 MiB by default, up to max.message.bytes, 32 MiB at most). A
// follower that fell behind is therefore sent requests of hundreds of MB:
// over MaxFrameBytes, refused on every retry, so it never caught up. The
// transport cuts such a request into parts of at most
// Options.MaxAppendBytes of entries (an entry larger than that travels
// alone) and sends them as consecutive AppendEntries on one connection:
//
//	request  prev=(10,t) entries 11..74                          commit=C
//	part 1   prev=(10,t) entries 11..18   (≤ MaxAppendBytes)     commit=C
//	part 2   prev=(18,t) entries 19..26                          commit=C
//	...
//	part 8   prev=(66,t) entries 67..74                          commit=C
//
// Each part names the entry before its first as its previous entry, so the
// follower checks and stores every part as raft's protocol says it would
// the whole request: a part is a valid AppendEntries on its own, and a
// follower that stored some parts and not others holds a prefix of the
// request, which raft's next request repairs like any lag. The answer raft
// sees is the first part's answer that failed or carries a newer term, or
// else the last part's, which acknowledges the whole request.
//
// Rejected alternative: raising MaxFrameBytes to fit raft's largest
// request (256 entries of 32 MiB) means frames of gigabytes, decoded into
// memory whole on the follower, and one fsync at the end of it.

// entryOverhead is an upper bound on what msgpack adds to an entry's Data
// and Extensions: index, term, type, the appended-at time and field names.
const entryOverhead = 128

// entryBytes is an entry's share of a request frame, a little over.
func entryBytes(e *raft.Log) int {
	return len(e.Data) + len(e.Extensions) + entryOverhead
}

// requestBytes is an AppendEntries request's entries' share of its frame.
func requestBytes(args *raft.AppendEntriesRequest) int {
	n := 0
	for _, e := range args.Entries {
		n += entryBytes(e)
	}
	return n
}

// splitAppend cuts args into consecutive requests whose entries take at
// most limit bytes each (an entry larger than limit goes alone). It returns
// nil when args fits as it is. The parts share args' entries; the caller
// must not change them.
func splitAppend(args *raft.AppendEntriesRequest, limit int) []*raft.AppendEntriesRequest {
	if requestBytes(args) <= limit {
		return nil
	}
	var parts []*raft.AppendEntriesRequest
	prevIndex, prevTerm := args.PrevLogEntry, args.PrevLogTerm
	start, size := 0, 0
	cut := func(end int) {
		part := *args
		part.Entries = args.Entries[start:end:end]
		part.PrevLogEntry, part.PrevLogTerm = prevIndex, prevTerm
		parts = append(parts, &part)
		last := args.Entries[end-1]
		prevIndex, prevTerm = last.Index, last.Term
		start, size = end, 0
	}
	for i, e := range args.Entries {
		n := entryBytes(e)
		if size > 0 && size+n > limit {
			cut(i)
		}
		size += n
	}
	cut(len(args.Entries))
	return parts
}

// answerOf is the answer to a request sent as parts, given the parts'
// answers in order (all of them delivered without a transport error): the
// first that failed or saw a newer term, else the last.
func answerOf(args *raft.AppendEntriesRequest, answers []*raft.AppendEntriesResponse) *raft.AppendEntriesResponse {
	for _, a := range answers {
		if ends(args, a) {
			return a
		}
	}
	return answers[len(answers)-1]
}

// ends reports whether a part's answer ends the request: refused, or from
// a newer term.
func ends(args *raft.AppendEntriesRequest, a *raft.AppendEntriesResponse) bool {
	return !a.Success || a.Term > args.Term
}

// appendParts sends a request cut into parts on one connection, all of
// them before waiting for any answer (the follower handles them in order,
// so its writes and fsyncs overlap the leader's encoding and sending of the
// next parts), and then sets resp from their answers (answerOf). A part
// after one that is refused is refused too (its previous entry is missing)
// and changes nothing. The parts' entries are in memory already (raft's
// request), and one encoded part at a time.
//
// Sent one after another, each waiting for the last, a request of 64
// batches of 1 MiB took 8 round trips of an 8 MiB write and fsync: a
// follower behind by a GB caught up at a third to a half of the produce
// rate.
func (t *Transport) appendParts(target raft.ServerAddress, args *raft.AppendEntriesRequest, parts []*raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	if t.isClosed() {
		return ErrClosed
	}
	c, err := t.m.getConn(target)
	if err != nil {
		return fmt.Errorf("%s to %s (group %q): %w", rpcAppendEntries, target, t.group, err)
	}
	answers := make([]*raft.AppendEntriesResponse, 0, len(parts))
	calls := make([]*call, 0, len(parts))
	var sendErr error
	for _, part := range parts {
		b, err := t.encodeRequest(rpcAppendEntries, part, nil)
		if err != nil {
			sendErr = err
			break
		}
		a := new(raft.AppendEntriesResponse)
		cl := newCall(a)
		c.start(cl, b, t.m.opts.RPCTimeout)
		answers, calls = append(answers, a), append(calls, cl)
	}
	// Every call started is waited for (or cancelled), so nothing decodes
	// into an answer after this returns.
	for _, cl := range calls {
		select {
		case <-cl.done:
		case <-t.closing:
			c.cancelCall(cl, ErrClosed)
			<-cl.done
		}
	}
	for i, cl := range calls {
		if cl.err != nil {
			return fmt.Errorf("%s to %s (group %q): %w", rpcAppendEntries, target, t.group, cl.err)
		}
		if ends(args, answers[i]) {
			*resp = *answers[i]
			return nil
		}
	}
	if sendErr != nil || len(calls) == 0 {
		return fmt.Errorf("%s to %s (group %q): %w", rpcAppendEntries, target, t.group, sendErr)
	}
	*resp = *answers[len(answers)-1]
	return nil
}
