package assign

import "slices"

// Reconcile is the cooperative half of a rebalance: given the target
// assignment and what each member owns now, it says what each member
// should own now ("tell"), so that the group moves towards the target
// without two members ever owning one partition and without stopping
// members the change does not concern.
//
// For every member of target, tell is its target minus the partitions
// that some other member still owns: those are withheld until their owner
// has released them. A member's owned partitions that are not in its tell
// list are to be released (revoked by omission). A member found in owned
// but not in target (it left or was fenced) gets an empty list. Every
// member of target or owned has an entry; every list is sorted.
//
// Invariant. Suppose target gives no partition to two members and owned
// shows no partition owned by two members. Then the sets owned[m] ∪
// tell[m] are pairwise disjoint across members. A member acting on what it
// was told moves from owned[m] to tell[m] (releasing before or after
// acquiring, it holds a subset of their union meanwhile), so whatever
// order and timing the members act in, no partition is ever owned by two
// members. Proof: p ∈ tell[m] means p ∈ target[m], hence p ∉ target[o]
// and p ∉ tell[o] for o ≠ m, and p ∉ owned[o] by construction; p ∈
// owned[m] ∩ owned[o] is excluded by the premise. Repeated rounds reach
// the target: once an owner releases a withheld partition, the next round
// tells its new owner.
//
// If owned does show a partition owned by two members (a broken premise,
// say a stale report), it is withheld from everyone, so both release it,
// and the next round gives it to its target owner.
//
// owned must be what each member may own: its last report plus whatever
// it was told since, until it reports again (see the package doc).
// Reconcile does not modify its arguments; the result belongs to the
// caller.
func Reconcile(target, owned Assignment) Assignment {
	const shared = "" // owners value of a partition owned by two or more members; member IDs are never empty
	owners := map[TopicPartition]string{}
	for _, id := range sortedKeys(owned) {
		for _, tp := range owned[id] {
			if o, ok := owners[tp]; ok && o != id {
				owners[tp] = shared
			} else {
				owners[tp] = id
			}
		}
	}
	tell := make(Assignment, len(target)+len(owned))
	for _, id := range sortedKeys(owned) {
		tell[id] = []TopicPartition{}
	}
	for _, id := range sortedKeys(target) {
		list := []TopicPartition{}
		for _, tp := range target[id] {
			if o, ok := owners[tp]; !ok || o == id {
				list = append(list, tp)
			}
		}
		slices.SortFunc(list, Compare)
		tell[id] = slices.CompactFunc(list, func(a, b TopicPartition) bool { return a == b })
	}
	return tell
}
