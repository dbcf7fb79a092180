package main

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stratalog/strata/internal/suggest"
)

// The command tree's handling of typos and missing arguments. Cobra's own
// messages ("accepts 1 arg(s), received 0", a multi-line "Did you mean
// this?") are rewritten into one line that says what is missing in words,
// and each of these errors is followed by the command's usage line:
//
//	strata: unknown command "lst" for "strata topic" (did you mean "list"?)
//	usage: strata topic COMMAND (see: strata topic --help)
//
// A command group given no subcommand prints its help and exits 0, as
// rpk and kubectl do; given an unknown one, it fails (exit 1).

// finishTree walks the tree under root once it is built: groups get a
// RunE that refuses unknown subcommands, and argument checks get words.
func finishTree(root *cobra.Command) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.HasSubCommands() && !c.Runnable() {
			c.Args = cobra.ArbitraryArgs
			c.RunE = func(cmd *cobra.Command, args []string) error {
				if len(args) == 0 {
					return cmd.Help()
				}
				return unknownCommand(cmd, args[0])
			}
		}
		if orig := c.Args; orig != nil && !c.HasSubCommands() {
			c.Args = func(cmd *cobra.Command, args []string) error {
				err := orig(cmd, args)
				if err == nil {
					return nil
				}
				// Only cobra's stock checks are reworded; commands with
				// their own Args already speak in words.
				msg := err.Error()
				if !strings.HasPrefix(msg, "accepts ") && !strings.HasPrefix(msg, "unknown command ") {
					return err
				}
				return argsError(cmd, args)
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// unknownCommand is a group's reply to an argument that names none of its
// subcommands.
func unknownCommand(cmd *cobra.Command, typed string) error {
	msg := fmt.Sprintf("unknown command %q for %q", typed, cmd.CommandPath())
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2 // cobra's default, set only on its own path
	}
	switch s := cmd.SuggestionsFor(typed); len(s) {
	case 0:
	case 1:
		msg += fmt.Sprintf(" (did you mean %q?)", s[0])
	default:
		q := strings.Split(quoteArgs(s), " ")
		msg += fmt.Sprintf(" (did you mean %s or %s?)", strings.Join(q[:len(q)-1], ", "), q[len(q)-1])
	}
	return syntaxErrorf("%s", msg)
}

// placeholders are the positional arguments of cmd's Use line: the
// upper-case words after its name, up to the first flag.
func placeholders(cmd *cobra.Command) []string {
	var out []string
	for _, f := range strings.Fields(cmd.Use)[1:] {
		if strings.HasPrefix(f, "-") || strings.HasPrefix(f, "[") {
			break
		}
		out = append(out, f)
	}
	return out
}

// argWords names a placeholder in words, for "needs a topic".
func argWords(cmd *cobra.Command, p string) string {
	switch p {
	case "TOPIC":
		return "a topic"
	case "NAME":
		if cmd.HasParent() && cmd.Parent().HasParent() {
			return "a " + cmd.Parent().Name() + " name"
		}
		return "a name"
	case "GROUP":
		return "a group"
	case "NODE":
		return "a broker's node id"
	case "TOPIC/PARTITION":
		return "a partition, as TOPIC/PARTITION"
	case "TOPIC[/PARTITION]":
		return "a topic or a partition, as TOPIC or TOPIC/PARTITION"
	}
	return "a " + strings.ToLower(strings.Trim(p, ".[]"))
}

// commandName is cmd's path without the program name: "topic create".
func commandName(cmd *cobra.Command) string {
	path := cmd.CommandPath()
	if i := strings.IndexByte(path, ' '); i >= 0 {
		return path[i+1:]
	}
	return path
}

// argsError says what is wrong with args in words.
func argsError(cmd *cobra.Command, args []string) error {
	ps := placeholders(cmd)
	usage := strings.TrimSpace(cmd.CommandPath() + " " + strings.Join(ps, " "))
	switch {
	case len(args) < len(ps):
		return syntaxErrorf("%s needs %s: %s", commandName(cmd), argWords(cmd, ps[len(args)]), usage)
	case len(ps) == 0:
		return syntaxErrorf("%s takes no arguments, got %s", commandName(cmd), quoteArgs(args))
	default:
		return syntaxErrorf("%s takes %s, got %d arguments (%s): %s", commandName(cmd), argWords(cmd, ps[0]), len(args), quoteArgs(args), usage)
	}
}

func quoteArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = fmt.Sprintf("%q", a)
	}
	return strings.Join(q, " ")
}

// printError writes a failed command's error: one line, "strata:
// <reason>", and for a mistake on the command line a second line with the
// usage of the command that was run.
func printError(w io.Writer, e *env, cmd *cobra.Command, err error) {
	io.WriteString(w, "strata: "+advise(err, e)+"\n")
	var ue *usageError
	if cmd == nil || !errors.As(err, &ue) || !ue.withUsage {
		return
	}
	use := cmd.CommandPath()
	switch {
	case cmd.HasAvailableSubCommands():
		use += " COMMAND"
	default:
		if ps := placeholders(cmd); len(ps) > 0 {
			use += " " + strings.Join(ps, " ")
		}
		if cmd.HasAvailableFlags() {
			use += " [flags]"
		}
	}
	fmt.Fprintf(w, "usage: %s (see: %s --help)\n", use, cmd.CommandPath())
}

var unknownFlagRE = regexp.MustCompile(`^unknown flag: --([^\s=]+)$`)

var flagErrRE = regexp.MustCompile(`^invalid argument "(.*)" for "(?:-., )?(--[^"]+)" flag: (.*)$`)

// flagError rewords pflag's parse errors, which name Go's parsers
// ("strconv.ParseInt: parsing "x": invalid syntax"), into the flag and
// what it wants.
func flagError(cmd *cobra.Command, err error) error {
	if m := unknownFlagRE.FindStringSubmatch(err.Error()); m != nil {
		return syntaxErrorf("unknown flag: --%s%s", m[1], suggest.Flag(cmd.Flags(), m[1]))
	}
	m := flagErrRE.FindStringSubmatch(err.Error())
	if m == nil {
		return syntaxErrorf("%v", err)
	}
	value, flag, cause := m[1], m[2], m[3]
	want := cause
	switch {
	case strings.Contains(cause, "strconv.Parse") && strings.Contains(cause, "value out of range"):
		want = "out of range"
	case strings.Contains(cause, "strconv.ParseInt"), strings.Contains(cause, "strconv.ParseUint"):
		want = "want a whole number"
	case strings.Contains(cause, "strconv.ParseFloat"):
		want = "want a number"
	case strings.Contains(cause, "strconv.ParseBool"):
		want = "want true or false"
	case strings.HasPrefix(cause, "time: "):
		want = "want a duration such as 500ms, 10s or 1m30s"
	}
	return syntaxErrorf("%s %q: %s", flag, value, want)
}
