package broker

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/acl"
	"github.com/stratalog/strata/pkg/apierr"
)

// Authorization: may this principal make this call? Kafka's model
// (pkg/acl): ACL bindings in the metadata quorum, deny wins, no matching
// allow means no, super users (--super-users) may do anything.
//
// When ACLs are enforced (--authorizer):
//   - none: never; every principal may do anything (today's behaviour).
//   - acl: always; with no ACLs only super users can do anything, as Kafka
//     with allow.everyone.if.no.acl.found=false.
//   - auto (default): when some client listener authenticates its clients,
//     i.e. is SASL_PLAINTEXT or SASL_SSL, or is SSL with --tls-client-auth
//     require. A broker where every principal is User:ANONYMOUS has
//     nothing to tell principals apart by, so the embedded single-node
//     default (PLAINTEXT on loopback) stays open exactly as before.
//
// Every method of the Strata service has an entry in methodChecks (a test
// fails if one lacks it; a method without one is refused). Each entry
// lists the checks a request needs, as Kafka's request handlers do; a
// requirement with two checks passes when either does (creating a topic:
// create on the cluster, or on the topic). Calls that list things
// (Metadata of every topic, ListTopics, ListGroups) are not refused but
// answer only what the principal may describe (filterResponse).
//
// A refused call gets AUTHORIZATION_FAILED (gRPC PermissionDenied) naming
// the principal, the operation and the resource, and the command that
// would allow it; it is counted in
// strata_authorization_denied_total{operation,resource_type}.

// Authorizer modes (--authorizer).
const (
	AuthorizerAuto = "auto"
	AuthorizerACL  = "acl"
	AuthorizerNone = "none"
)

type check struct {
	op   acl.Operation
	rt   acl.ResourceType
	name string
}

// requirement passes when any of its checks does.
type requirement []check

func need(op acl.Operation, rt acl.ResourceType, name string) requirement {
	return requirement{{op, rt, name}}
}

func onCluster(op acl.Operation) requirement { return need(op, acl.Cluster, acl.ClusterName) }

// methodChecks maps each Strata method to what its request needs.
var methodChecks = map[string]func(b *Broker, req any) []requirement{
	v1.Strata_CreateTopic_FullMethodName: func(_ *Broker, req any) []requirement {
		r := req.(*v1.CreateTopicRequest)
		return []requirement{{{acl.Create, acl.Cluster, acl.ClusterName}, {acl.Create, acl.Topic, r.Name}}}
	},
	v1.Strata_DeleteTopic_FullMethodName: func(_ *Broker, req any) []requirement {
		return []requirement{need(acl.Delete, acl.Topic, req.(*v1.DeleteTopicRequest).Name)}
	},
	v1.Strata_ListTopics_FullMethodName: nothing, // filtered
	v1.Strata_DescribeTopic_FullMethodName: func(_ *Broker, req any) []requirement {
		return []requirement{need(acl.Describe, acl.Topic, req.(*v1.DescribeTopicRequest).Name)}
	},
	v1.Strata_AlterTopicConfig_FullMethodName: func(_ *Broker, req any) []requirement {
		return []requirement{need(acl.AlterConfigs, acl.Topic, req.(*v1.AlterTopicConfigRequest).Name)}
	},
	v1.Strata_Produce_FullMethodName: func(b *Broker, req any) []requirement {
		r := req.(*v1.ProduceRequest)
		rs := []requirement{need(acl.Write, acl.Topic, r.Topic)}
		if b.cfg.AutoCreateTopics && !b.hasTopic(r.Topic) {
			rs = append(rs, requirement{{acl.Create, acl.Cluster, acl.ClusterName}, {acl.Create, acl.Topic, r.Topic}})
		}
		return rs
	},
	// An id alone writes nothing: each Produce still needs WRITE.
	v1.Strata_InitProducerId_FullMethodName: nothing,
	v1.Strata_Fetch_FullMethodName: func(_ *Broker, req any) []requirement {
		var rs []requirement
		for _, p := range req.(*v1.FetchRequest).Partitions {
			rs = appendTopic(rs, acl.Read, p.Topic)
		}
		return rs
	},
	v1.Strata_ListOffsets_FullMethodName: func(_ *Broker, req any) []requirement {
		var rs []requirement
		for _, p := range req.(*v1.ListOffsetsRequest).Partitions {
			rs = appendTopic(rs, acl.Describe, p.Topic)
		}
		return rs
	},
	v1.Strata_DeleteRecords_FullMethodName: func(_ *Broker, req any) []requirement {
		return []requirement{need(acl.Delete, acl.Topic, req.(*v1.DeleteRecordsRequest).Topic)}
	},
	v1.Strata_Metadata_FullMethodName: nothing, // filtered
	v1.Strata_FindCoordinator_FullMethodName: func(_ *Broker, req any) []requirement {
		return []requirement{need(acl.Describe, acl.Group, req.(*v1.FindCoordinatorRequest).Group)}
	},
	v1.Strata_GroupHeartbeat_FullMethodName: func(_ *Broker, req any) []requirement {
		return []requirement{need(acl.Read, acl.Group, req.(*v1.GroupHeartbeatRequest).Group)}
	},
	v1.Strata_CommitOffsets_FullMethodName: func(_ *Broker, req any) []requirement {
		r := req.(*v1.CommitOffsetsRequest)
		rs := []requirement{need(acl.Read, acl.Group, r.Group)}
		for _, o := range r.Offsets {
			rs = appendTopic(rs, acl.Read, o.Topic)
		}
		return rs
	},
	v1.Strata_FetchOffsets_FullMethodName: func(_ *Broker, req any) []requirement {
		r := req.(*v1.FetchOffsetsRequest)
		rs := []requirement{need(acl.Describe, acl.Group, r.Group)}
		for _, tp := range r.Partitions {
			rs = appendTopic(rs, acl.Describe, tp.Topic)
		}
		return rs
	},
	v1.Strata_ListGroups_FullMethodName: nothing, // filtered
	v1.Strata_DescribeGroup_FullMethodName: func(_ *Broker, req any) []requirement {
		return []requirement{need(acl.Describe, acl.Group, req.(*v1.DescribeGroupRequest).Group)}
	},
	v1.Strata_DeleteGroup_FullMethodName: func(_ *Broker, req any) []requirement {
		return []requirement{need(acl.Delete, acl.Group, req.(*v1.DeleteGroupRequest).Group)}
	},
	v1.Strata_TransferLeader_FullMethodName:     clusterOp(acl.Alter),
	v1.Strata_MovePartition_FullMethodName:      clusterOp(acl.Alter),
	v1.Strata_DecommissionBroker_FullMethodName: clusterOp(acl.Alter),
	v1.Strata_VerifyPartition_FullMethodName:    clusterOp(acl.Describe),
	v1.Strata_Authenticate_FullMethodName:       nothing,
	v1.Strata_UpsertUser_FullMethodName:         clusterOp(acl.Alter),
	v1.Strata_DeleteUser_FullMethodName:         clusterOp(acl.Alter),
	v1.Strata_ListUsers_FullMethodName:          clusterOp(acl.Describe),
	v1.Strata_CreateACLs_FullMethodName:         clusterOp(acl.Alter),
	v1.Strata_ListACLs_FullMethodName:           clusterOp(acl.Describe),
	v1.Strata_DeleteACLs_FullMethodName:         clusterOp(acl.Alter),
}

func nothing(*Broker, any) []requirement { return nil }

func clusterOp(op acl.Operation) func(*Broker, any) []requirement {
	return func(*Broker, any) []requirement { return []requirement{onCluster(op)} }
}

// appendTopic adds a check on a topic unless rs has it already.
func appendTopic(rs []requirement, op acl.Operation, topic string) []requirement {
	r := need(op, acl.Topic, topic)
	if slices.ContainsFunc(rs, func(x requirement) bool { return slices.Equal(x, r) }) {
		return rs
	}
	return append(rs, r)
}

// authz holds the denial counter.
type authz struct {
	denied *prometheus.CounterVec
}

func newAuthz(reg prometheus.Registerer) *authz {
	a := &authz{denied: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "strata_authorization_denied_total",
		Help: "Client calls refused by the ACLs, by operation and resource type.",
	}, []string{"operation", "resource_type"})}
	reg.MustRegister(a.denied)
	return a
}

// authenticates reports whether a listener tells principals apart.
func authenticates(l listener, tlsClientAuth string) bool {
	return l.SASL() || l.TLS() && tlsClientAuth == "require"
}

func (b *Broker) hasTopic(name string) bool {
	_, ok := b.meta.Topic(name)
	return ok
}

// anyListenerAuthenticates reports whether some client listener tells
// principals apart (the authorizer's auto mode).
func (b *Broker) anyListenerAuthenticates() bool {
	for _, a := range b.api {
		if authenticates(*a.l, b.cfg.TLSClientAuth) {
			return true
		}
	}
	return false
}

// aclsEnforced reports whether calls are checked against the ACLs.
func (b *Broker) aclsEnforced() bool {
	switch b.cfg.Authorizer {
	case AuthorizerNone:
		return false
	case AuthorizerACL:
		return true
	}
	return b.anyListenerAuthenticates()
}

// unrestricted reports whether p may do anything: ACLs are not enforced,
// or p is a super user.
func (b *Broker) unrestricted(p principal) bool {
	return !b.aclsEnforced() || slices.Contains(b.cfg.SuperUsers, p.Name)
}

// allowed reports whether p passes one check.
func (b *Broker) allowed(ix *acl.Index, p principal, c check) bool {
	return ix.Allowed(p.Name, p.Host, c.op, c.rt, c.name)
}

// authorizeRequest checks a request against methodChecks.
func (b *Broker) authorizeRequest(ctx context.Context, method string, req any) error {
	p := principalFrom(ctx)
	if b.unrestricted(p) {
		return nil
	}
	checks, ok := methodChecks[method]
	if !ok {
		return apierr.New(v1.ErrorCode_ERROR_CODE_AUTHORIZATION_FAILED, "%s: no ACL mapping for this method; only super users may call it", method)
	}
	ix := b.meta.ACLIndex()
	for _, r := range checks(b, req) {
		if !slices.ContainsFunc(r, func(c check) bool { return b.allowed(ix, p, c) }) {
			return b.denied(p, r[len(r)-1])
		}
	}
	return nil
}

// denied counts a refusal and says what would allow the call.
func (b *Broker) denied(p principal, c check) error {
	b.authz.denied.WithLabelValues(string(c.op), string(c.rt)).Inc()
	resource := fmt.Sprintf("%s %s", c.rt, c.name)
	flag := fmt.Sprintf("--%s %s", c.rt, c.name)
	if c.rt == acl.Cluster {
		resource, flag = "the cluster", "--cluster"
	}
	implied := ""
	switch {
	case c.op == acl.Describe && c.rt == acl.Topic:
		// Producers and consumers meet DESCRIBE first (metadata): say
		// that the operation they need grants it too, as in Kafka.
		implied = " (or --operation write to produce, read to consume: each implies describe)"
	case c.op == acl.Describe && c.rt == acl.Group:
		// A group member meets DESCRIBE first (FindCoordinator), then
		// needs READ: the one ACL does for both.
		implied = " (or --operation read to consume in the group: read implies describe)"
	}
	return apierr.New(v1.ErrorCode_ERROR_CODE_AUTHORIZATION_FAILED,
		"%s may not %s %s: add an ACL with `strata acl create --allow-principal %s --operation %s %s`%s",
		p.Name, strings.ToUpper(string(c.op)), resource, p.Name, c.op, flag, implied)
}

// filterResponse keeps in a listing only what the principal may describe.
func (b *Broker) filterResponse(ctx context.Context, req, resp any) {
	switch resp.(type) {
	case *v1.ListTopicsResponse, *v1.ListGroupsResponse, *v1.MetadataResponse:
	default:
		return
	}
	p := principalFrom(ctx)
	if b.unrestricted(p) {
		return
	}
	ix := b.meta.ACLIndex()
	may := func(rt acl.ResourceType, name string) bool { return b.allowed(ix, p, check{acl.Describe, rt, name}) }
	switch r := resp.(type) {
	case *v1.ListTopicsResponse:
		r.Topics = slices.DeleteFunc(r.Topics, func(t *v1.TopicSummary) bool { return !may(acl.Topic, t.Name) })
	case *v1.ListGroupsResponse:
		r.Groups = slices.DeleteFunc(r.Groups, func(g *v1.GroupSummary) bool { return !may(acl.Group, g.Group) })
	case *v1.MetadataResponse:
		if len(req.(*v1.MetadataRequest).Topics) == 0 {
			r.Topics = slices.DeleteFunc(r.Topics, func(t *v1.TopicMetadata) bool { return !may(acl.Topic, t.Name) })
			return
		}
		// Named topics: Kafka answers TOPIC_AUTHORIZATION_FAILED for each
		// the principal may not describe, whether or not it exists.
		for i, t := range r.Topics {
			if !may(acl.Topic, t.Name) {
				r.Topics[i] = &v1.TopicMetadata{Name: t.Name, Error: apierr.ToProto(b.denied(p, check{acl.Describe, acl.Topic, t.Name}))}
			}
		}
	}
}

// validateSecurity checks the authentication and authorization settings.
func (c Config) validateSecurity() error {
	switch c.Authorizer {
	case "", AuthorizerAuto, AuthorizerACL, AuthorizerNone:
	default:
		return fmt.Errorf("--authorizer %q: want auto, acl or none", c.Authorizer)
	}
	for _, u := range c.SuperUsers {
		if err := acl.ValidatePrincipal(u); err != nil {
			return fmt.Errorf("--super-users %q: want Type:name, e.g. User:admin", u)
		}
	}
	if c.SASLSessionTTL < time.Second {
		return fmt.Errorf("--sasl-session-ttl %s: want at least 1s (default 1h)", c.SASLSessionTTL)
	}
	return nil
}
