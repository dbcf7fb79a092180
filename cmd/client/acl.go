package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/stratalog/strata/pkg/acl"
	"github.com/stratalog/strata/pkg/client"
)

func newACLCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "acl",
		Short: "Create, list and delete access control lists",
		Long: `ACLs say which principal (User:NAME, from SASL/SCRAM or a client
certificate's CN; User:* for everyone) may do which operation to which
resources, from which host, as Kafka's:

  resources   --topic NAME, --group NAME, --transactional-id NAME, --cluster
              with --resource-pattern-type literal (the name; "*" = every
              name) or prefixed (every name starting with it)
  operations  read, write, create, delete, alter, describe,
              describe-configs, alter-configs, idempotent-write, all
  permission  allow or deny; a matching deny always wins, and a principal
              no ACL allows is refused

Brokers enforce ACLs when a client listener authenticates (SASL_*, or SSL
with --tls-client-auth require) or with --authorizer acl; --super-users
need none. read, write, delete and alter imply describe; alter-configs
implies describe-configs. What each call needs: docs/operations.md,
Security. Changing ACLs needs alter on the cluster; listing them,
describe.`,
		Example: `  strata acl create --allow-principal User:bob --operation write --operation describe --topic orders
  strata acl create --allow-principal User:bob --operation read --topic pay- --resource-pattern-type prefixed
  strata acl create --allow-principal User:bob --operation read --group billing
  strata acl create --deny-principal User:bob --operation all --topic pay-secret
  strata acl list --principal User:bob
  strata acl delete --principal User:bob --topic orders`,
	}
	cmd.AddCommand(newACLCreateCmd(e), newACLListCmd(e), newACLDeleteCmd(e))
	return cmd
}

// aclResources are the resource flags shared by the acl commands.
type aclResources struct {
	topics, groups, txnIDs []string
	cluster                bool
	pattern                string
}

func (r *aclResources) bind(cmd *cobra.Command, many bool) {
	f := cmd.Flags()
	f.StringArrayVar(&r.topics, "topic", nil, "topic name or prefix (repeatable)")
	f.StringArrayVar(&r.groups, "group", nil, "consumer group name or prefix (repeatable)")
	f.StringArrayVar(&r.txnIDs, "transactional-id", nil, "transactional id or prefix (repeatable)")
	f.BoolVar(&r.cluster, "cluster", false, "the cluster itself (topic creation, partition moves, users, ACLs)")
	def := string(acl.Literal)
	if !many {
		def = ""
	}
	f.StringVar(&r.pattern, "resource-pattern-type", def, "literal or prefixed")
}

type resourceRef struct {
	rt   acl.ResourceType
	name string
}

func (r *aclResources) list() []resourceRef {
	var out []resourceRef
	for _, n := range r.topics {
		out = append(out, resourceRef{acl.Topic, n})
	}
	for _, n := range r.groups {
		out = append(out, resourceRef{acl.Group, n})
	}
	for _, n := range r.txnIDs {
		out = append(out, resourceRef{acl.TransactionalID, n})
	}
	if r.cluster {
		out = append(out, resourceRef{acl.Cluster, acl.ClusterName})
	}
	return out
}

func parseOps(ops []string) ([]acl.Operation, error) {
	var out []acl.Operation
	for _, o := range ops {
		op, err := acl.ParseOperation(o)
		if err != nil {
			return nil, usageErrorf("--operation %q: want read, write, create, delete, alter, describe, describe-configs, alter-configs, idempotent-write or all", o)
		}
		out = append(out, op)
	}
	return out, nil
}

func newACLCreateCmd(e *env) *cobra.Command {
	var allow, deny, ops []string
	var allowHost, denyHost string
	var res aclResources
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create ACLs",
		Long: `Create one ACL per principal, operation and resource given: every
--allow-principal (from --allow-host) and --deny-principal (from
--deny-host) gets every --operation on every resource. Creating an ACL
that exists already changes nothing.`,
		Example: `  strata acl create --allow-principal User:bob --operation write --topic orders
  strata acl create --allow-principal User:ops --operation alter --cluster
  strata acl create --allow-principal 'User:*' --operation read --topic public --allow-host 10.0.0.7`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(allow)+len(deny) == 0 {
				return usageErrorf("name who: --allow-principal User:NAME or --deny-principal User:NAME")
			}
			if len(ops) == 0 {
				return usageErrorf("name what: --operation (read, write, create, delete, alter, describe, describe-configs, alter-configs, idempotent-write, all)")
			}
			operations, err := parseOps(ops)
			if err != nil {
				return err
			}
			resources := res.list()
			if len(resources) == 0 {
				return usageErrorf("name on what: --topic, --group, --transactional-id or --cluster")
			}
			var bindings []client.ACLBinding
			add := func(principals []string, host string, perm acl.Permission) {
				for _, p := range principals {
					for _, op := range operations {
						for _, r := range resources {
							bindings = append(bindings, client.ACLBinding{Principal: p, Host: host, ResourceType: string(r.rt), Name: r.name,
								PatternType: res.pattern, Operation: string(op), Permission: string(perm)})
						}
					}
				}
			}
			add(allow, allowHost, acl.Allow)
			add(deny, denyHost, acl.Deny)
			return e.admin(cmd.Context(), func(ctx context.Context, a *client.Admin) error {
				if err := a.CreateACLs(ctx, bindings...); err != nil {
					return err
				}
				return printACLs(e, bindings)
			})
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&allow, "allow-principal", nil, "principal the ACLs allow, e.g. User:bob (repeatable)")
	f.StringArrayVar(&deny, "deny-principal", nil, "principal the ACLs deny (repeatable)")
	f.StringVar(&allowHost, "allow-host", acl.Wildcard, "IP address the allowing ACLs apply from (* = any)")
	f.StringVar(&denyHost, "deny-host", acl.Wildcard, "IP address the denying ACLs apply from (* = any)")
	f.StringArrayVar(&ops, "operation", nil, "operation (repeatable)")
	res.bind(cmd, true)
	return cmd
}

// aclFilter is the filter flags of list and delete.
type aclFilter struct {
	principal, host, operation, permission string
	res                                    aclResources
}

func (f *aclFilter) bind(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.principal, "principal", "", "only ACLs of this principal")
	fl.StringVar(&f.host, "host", "", "only ACLs for this host")
	fl.StringVar(&f.operation, "operation", "", "only ACLs of this operation")
	fl.StringVar(&f.permission, "permission", "", "only allow or only deny ACLs")
	f.res.bind(cmd, false)
}

// filters turns the flags into one filter per resource given (or one for
// any resource).
func (f *aclFilter) filters() ([]client.ACLBinding, error) {
	base := client.ACLBinding{Principal: f.principal, Host: f.host, PatternType: f.res.pattern, Permission: f.permission}
	if f.operation != "" {
		ops, err := parseOps([]string{f.operation})
		if err != nil {
			return nil, err
		}
		base.Operation = string(ops[0])
	}
	if f.permission != "" && f.permission != string(acl.Allow) && f.permission != string(acl.Deny) {
		return nil, usageErrorf("--permission %q: want allow or deny", f.permission)
	}
	resources := f.res.list()
	if len(resources) == 0 {
		return []client.ACLBinding{base}, nil
	}
	var out []client.ACLBinding
	for _, r := range resources {
		b := client.ACLBinding{Principal: base.Principal, Host: base.Host, PatternType: base.PatternType, Operation: base.Operation,
			Permission: base.Permission, ResourceType: string(r.rt), Name: r.name}
		out = append(out, b)
	}
	return out, nil
}

func newACLListCmd(e *env) *cobra.Command {
	var f aclFilter
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List ACLs",
		Long:    `List the ACLs that match every filter flag given (none: every ACL).`,
		Example: `  strata acl list
  strata acl list --principal User:bob -o json
  strata acl list --topic orders`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			filters, err := f.filters()
			if err != nil {
				return err
			}
			return e.admin(cmd.Context(), func(ctx context.Context, a *client.Admin) error {
				var all []client.ACLBinding
				for _, fl := range filters {
					got, err := a.ListACLs(ctx, fl)
					if err != nil {
						return err
					}
					all = append(all, got...)
				}
				return printACLs(e, all)
			})
		},
	}
	f.bind(cmd)
	return cmd
}

func newACLDeleteCmd(e *env) *cobra.Command {
	var f aclFilter
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Delete ACLs",
		Long: `Delete every ACL that matches all the filter flags given, and list what
was deleted. At least one flag is needed: there is no "delete everything"
without naming, e.g., --permission allow and then --permission deny.`,
		Example: `  strata acl delete --principal User:bob
  strata acl delete --topic orders --operation write`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			filters, err := f.filters()
			if err != nil {
				return err
			}
			if len(filters) == 1 && filters[0] == (client.ACLBinding{}) {
				return usageErrorf("name what to delete: --principal, --topic, --group, --transactional-id, --cluster, --operation, --host or --permission")
			}
			return e.admin(cmd.Context(), func(ctx context.Context, a *client.Admin) error {
				var all []client.ACLBinding
				for _, fl := range filters {
					got, err := a.DeleteACLs(ctx, fl)
					if err != nil {
						return err
					}
					all = append(all, got...)
				}
				if e.output != "json" {
					fmt.Fprintf(e.stdout, "deleted %d ACLs\n", len(all))
					if len(all) == 0 {
						return nil
					}
				}
				return printACLs(e, all)
			})
		},
	}
	f.bind(cmd)
	return cmd
}

type aclJSON struct {
	Principal    string `json:"principal"`
	Host         string `json:"host"`
	ResourceType string `json:"resource_type"`
	Name         string `json:"name"`
	PatternType  string `json:"pattern_type"`
	Operation    string `json:"operation"`
	Permission   string `json:"permission"`
}

func printACLs(e *env, acls []client.ACLBinding) error {
	if e.output == "json" {
		out := []aclJSON{}
		for _, b := range acls {
			out = append(out, aclJSON{b.Principal, b.Host, b.ResourceType, b.Name, b.PatternType, b.Operation, b.Permission})
		}
		return printJSON(e.stdout, out)
	}
	t := newTable(e.stdout, "PRINCIPAL", "HOST", "RESOURCE", "NAME", "PATTERN", "OPERATION", "PERMISSION")
	for _, b := range acls {
		t.row(b.Principal, b.Host, b.ResourceType, b.Name, b.PatternType, b.Operation, b.Permission)
	}
	return t.flush()
}
