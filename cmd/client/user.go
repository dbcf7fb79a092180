package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/client"
)

func newUserCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Create, list and delete SASL/SCRAM users",
		Long: `Users authenticate with SASL/SCRAM (SCRAM-SHA-256 or SCRAM-SHA-512) on
listeners whose protocol is SASL_PLAINTEXT or SASL_SSL; their principal is
User:NAME, which ACLs ("strata acl") and --super-users name.

The brokers store, in the metadata quorum, a salt and the keys derived
from the password (RFC 5802), never the password: this command computes
them, so the password does not leave this machine. Changing users needs
alter on the cluster; listing them, describe.`,
		Example: `  strata user create alice --mechanism SCRAM-SHA-512
  echo "$PASSWORD" | strata user create bob
  strata user list
  strata user delete bob`,
	}
	cmd.AddCommand(newUserCreateCmd(e), newUserListCmd(e), newUserDeleteCmd(e))
	return cmd
}

func newUserCreateCmd(e *env) *cobra.Command {
	var password, mechanism string
	var iterations int
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a user, or set its password for a mechanism",
		Long: `Create a SCRAM user, or replace its password for one mechanism (a user may
have one credential per mechanism). The password comes from --password,
else is asked for twice on a terminal, else is the first line of stdin.
Its sessions on the brokers go on until they expire (--sasl-session-ttl).`,
		Example: `  strata user create alice
  strata user create alice --mechanism SCRAM-SHA-512 --iterations 8192
  strata user create ci --password "$CI_PASSWORD"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			mechanism = strings.ToUpper(mechanism)
			if mechanism != client.ScramSHA256 && mechanism != client.ScramSHA512 {
				return usageErrorf("--mechanism %q: want SCRAM-SHA-256 or SCRAM-SHA-512", mechanism)
			}
			if iterations < 4096 || iterations > 16384 {
				return usageErrorf("--iterations %d: want 4096 to 16384", iterations)
			}
			pw, err := e.readNewPassword(password)
			if err != nil {
				return err
			}
			return e.admin(cmd.Context(), func(ctx context.Context, a *client.Admin) error {
				if err := a.UpsertUser(ctx, args[0], mechanism, pw, iterations); err != nil {
					return err
				}
				if e.output == "json" {
					return printJSON(e.stdout, map[string]string{"user": args[0], "mechanism": mechanism})
				}
				_, err := fmt.Fprintf(e.stdout, "user %q: %s credential set\n", args[0], mechanism)
				return err
			})
		},
	}
	cmd.Flags().StringVar(&password, "password", "", "the password (else asked for, or read from stdin's first line)")
	cmd.Flags().StringVar(&mechanism, "mechanism", client.ScramSHA256, "SCRAM-SHA-256 or SCRAM-SHA-512")
	cmd.Flags().IntVar(&iterations, "iterations", client.DefaultScramIterations, "PBKDF2 iterations, 4096 to 16384 (more: slower to guess, slower to log in)")
	return cmd
}

type userJSON struct {
	Name       string          `json:"name"`
	Mechanisms []mechanismJSON `json:"mechanisms"`
}

type mechanismJSON struct {
	Mechanism  string `json:"mechanism"`
	Iterations int32  `json:"iterations"`
}

func newUserListCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List users and their mechanisms",
		Long:    `List every SCRAM user with its mechanisms and iteration counts (never keys).`,
		Example: `  strata user list -o json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return e.admin(cmd.Context(), func(ctx context.Context, a *client.Admin) error {
				users, err := a.ListUsers(ctx)
				if err != nil {
					return err
				}
				if e.output == "json" {
					out := []userJSON{}
					for _, u := range users {
						j := userJSON{Name: u.Name, Mechanisms: []mechanismJSON{}}
						for _, m := range u.Mechanisms {
							j.Mechanisms = append(j.Mechanisms, mechanismJSON{m.Mechanism, int32(m.Iterations)})
						}
						out = append(out, j)
					}
					return printJSON(e.stdout, out)
				}
				t := newTable(e.stdout, "USER", "MECHANISMS")
				for _, u := range users {
					var ms []string
					for _, m := range u.Mechanisms {
						ms = append(ms, fmt.Sprintf("%s (%d iterations)", m.Mechanism, m.Iterations))
					}
					t.row(u.Name, strings.Join(ms, ", "))
				}
				return t.flush()
			})
		},
	}
}

func newUserDeleteCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "delete NAME",
		Short:   "Delete a user",
		Long:    `Delete a user and all its credentials; its sessions end at their next request. Its ACLs stay: delete them next with strata acl delete --principal User:NAME.`,
		Example: `  strata user delete bob`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.admin(cmd.Context(), func(ctx context.Context, a *client.Admin) error {
				err := a.DeleteUser(ctx, args[0])
				if errors.Is(err, apierr.ErrUnknownUser) {
					// The broker's "(strata user list)" does not say what
					// the command is for.
					return fmt.Errorf("user %q does not exist (list the users with: strata user list)", args[0])
				}
				if err != nil {
					return err
				}
				if e.output == "json" {
					return printJSON(e.stdout, map[string]string{"deleted": args[0]})
				}
				_, err = fmt.Fprintf(e.stdout, "deleted user %q\nnext: delete its ACLs, if it has any, with: strata acl delete --principal User:%s\n", args[0], args[0])
				return err
			})
		},
	}
}
