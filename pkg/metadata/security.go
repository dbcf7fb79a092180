package metadata

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/acl"
	"github.com/stratalog/strata/pkg/apierr"
)

// Users and ACLs. A user is a name and, per SCRAM mechanism, the salted
// keys the broker checks a client's proof against (RFC 5802): the salt,
// the iteration count, StoredKey = H(HMAC(SaltedPassword, "Client Key"))
// and ServerKey = HMAC(SaltedPassword, "Server Key"). The password itself
// never reaches the metadata, nor any broker: the CLI computes the keys
// (as Kafka's kafka-configs does with --add-config SCRAM-SHA-256=...).

// SCRAM mechanisms, as SASL names them; stored in the log.
const (
	ScramSHA256 = "SCRAM-SHA-256"
	ScramSHA512 = "SCRAM-SHA-512"
)

// Bounds on users and ACLs; part of the log's meaning (validate.go).
const (
	// MaxUserLen bounds a user name.
	MaxUserLen = 255
	// MinScramIterations and MaxScramIterations are Kafka's bounds.
	MinScramIterations = 4096
	MaxScramIterations = 16384
	// MinSaltLen and MaxSaltLen bound a SCRAM salt.
	MinSaltLen = 16
	MaxSaltLen = 128
	// MaxACLsPerChange bounds the bindings one CreateACLs adds or one
	// DeleteACLs's filters.
	MaxACLsPerChange = 1000
	// MaxACLs bounds the cluster's bindings.
	MaxACLs = 100000
)

// ScramCredential is one mechanism's salted keys for a user.
type ScramCredential struct {
	Salt       []byte `json:"salt"`
	Iterations int    `json:"iterations"`
	StoredKey  []byte `json:"stored_key"`
	ServerKey  []byte `json:"server_key"`
}

// User is a SCRAM user: its credentials by mechanism.
type User struct {
	Name        string                     `json:"name"`
	Credentials map[string]ScramCredential `json:"credentials"`
}

// UpsertScramCredential sets (creates or replaces) one mechanism's
// credential of a user, creating the user if needed.
type UpsertScramCredential struct {
	User       string
	Mechanism  string
	Salt       []byte
	Iterations int
	StoredKey  []byte
	ServerKey  []byte
}

// DeleteUser removes a user and all its credentials.
type DeleteUser struct{ User string }

// CreateACLs adds bindings; one equal to a stored binding is not added
// twice.
type CreateACLs struct{ Bindings []acl.Binding }

// DeleteACLs removes every binding that any of the filters matches.
type DeleteACLs struct{ Filters []acl.Filter }

func (UpsertScramCredential) isChange() {}
func (DeleteUser) isChange()            {}
func (CreateACLs) isChange()            {}
func (DeleteACLs) isChange()            {}

// ScramKeyLen is the length of a mechanism's StoredKey and ServerKey (its
// hash's size), or 0 for an unknown mechanism.
func ScramKeyLen(mechanism string) int {
	switch mechanism {
	case ScramSHA256:
		return 32
	case ScramSHA512:
		return 64
	}
	return 0
}

// ValidateUserName accepts 1 to MaxUserLen bytes of UTF-8 with no control
// characters or spaces.
func ValidateUserName(name string) error {
	if name == "" || len(name) > MaxUserLen || !utf8.ValidString(name) {
		return apierr.New(v1.ErrorCode_ERROR_CODE_INVALID_REQUEST, "user name must be 1 to %d bytes of UTF-8, is %d", MaxUserLen, len(name))
	}
	if strings.IndexFunc(name, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }) >= 0 {
		return apierr.New(v1.ErrorCode_ERROR_CODE_INVALID_REQUEST, "user name %q has a space or control character", name)
	}
	return nil
}

func validateCredential(c UpsertScramCredential) error {
	if err := ValidateUserName(c.User); err != nil {
		return err
	}
	n := ScramKeyLen(c.Mechanism)
	if n == 0 {
		return invalidChange("unknown SASL mechanism %q (SCRAM-SHA-256 or SCRAM-SHA-512)", c.Mechanism)
	}
	if c.Iterations < MinScramIterations || c.Iterations > MaxScramIterations {
		return invalidChange("SCRAM iterations %d outside %d..%d", c.Iterations, MinScramIterations, MaxScramIterations)
	}
	if len(c.Salt) < MinSaltLen || len(c.Salt) > MaxSaltLen {
		return invalidChange("SCRAM salt of %d bytes, must have %d to %d", len(c.Salt), MinSaltLen, MaxSaltLen)
	}
	if len(c.StoredKey) != n || len(c.ServerKey) != n {
		return invalidChange("%s keys must have %d bytes, have %d and %d", c.Mechanism, n, len(c.StoredKey), len(c.ServerKey))
	}
	return nil
}

// validateSecurity is validate's part for users and ACLs.
func (s *state) validateSecurity(c Change) error {
	switch c := c.(type) {
	case UpsertScramCredential:
		return validateCredential(c)
	case DeleteUser:
		if _, ok := s.Users[c.User]; !ok {
			return UnknownUser(c.User)
		}
	case CreateACLs:
		if len(c.Bindings) == 0 || len(c.Bindings) > MaxACLsPerChange {
			return invalidChange("%d ACLs in one change, must be 1 to %d", len(c.Bindings), MaxACLsPerChange)
		}
		if len(s.ACLs)+len(c.Bindings) > MaxACLs {
			return invalidChange("the cluster would have more than %d ACLs", MaxACLs)
		}
		for _, b := range c.Bindings {
			if err := b.Validate(); err != nil {
				return err
			}
		}
	case DeleteACLs:
		if len(c.Filters) == 0 || len(c.Filters) > MaxACLsPerChange {
			return invalidChange("%d ACL filters in one change, must be 1 to %d", len(c.Filters), MaxACLsPerChange)
		}
	}
	return nil
}

// applySecurity is apply's part for users and ACLs (c already validated).
func (s *state) applySecurity(c Change) {
	switch c := c.(type) {
	case UpsertScramCredential:
		u := User{Name: c.User, Credentials: map[string]ScramCredential{}}
		if old, ok := s.Users[c.User]; ok {
			for m, cred := range old.Credentials {
				u.Credentials[m] = cred
			}
		}
		u.Credentials[c.Mechanism] = ScramCredential{
			Salt: slices.Clone(c.Salt), Iterations: c.Iterations,
			StoredKey: slices.Clone(c.StoredKey), ServerKey: slices.Clone(c.ServerKey),
		}
		s.Users[c.User] = u
	case DeleteUser:
		delete(s.Users, c.User)
	case CreateACLs:
		acls := slices.Clone(s.ACLs)
		for _, b := range c.Bindings {
			if !slices.Contains(acls, b) {
				acls = append(acls, b)
			}
		}
		s.setACLs(acls)
	case DeleteACLs:
		s.setACLs(slices.DeleteFunc(slices.Clone(s.ACLs), func(b acl.Binding) bool {
			return slices.ContainsFunc(c.Filters, func(f acl.Filter) bool { return f.Matches(b) })
		}))
	}
}

func (s *state) setACLs(bs []acl.Binding) {
	s.ACLs = bs
	s.aclIndex = acl.NewIndex(bs)
}

// UnknownUser is the error for a user that does not exist.
func UnknownUser(name string) error {
	return apierr.New(v1.ErrorCode_ERROR_CODE_UNKNOWN_USER, "user %q does not exist (strata user list)", name)
}

// Users returns every user, sorted by name. The credentials are shared:
// the caller must not change them.
func (s *RaftStore) Users() []User {
	st := s.fsm.read()
	out := make([]User, 0, len(st.Users))
	for _, u := range st.Users {
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b User) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// ScramCredential returns one user's credential for a mechanism.
func (s *RaftStore) ScramCredential(user, mechanism string) (ScramCredential, bool) {
	c, ok := s.fsm.read().Users[user].Credentials[mechanism]
	return c, ok
}

// ACLs returns every ACL binding, in the order they were created. The
// slice is shared: the caller must not change it.
func (s *RaftStore) ACLs() []acl.Binding { return s.fsm.read().ACLs }

// ACLIndex returns the index of the current ACLs (never nil; immutable).
func (s *RaftStore) ACLIndex() *acl.Index {
	if ix := s.fsm.read().aclIndex; ix != nil {
		return ix
	}
	return acl.NewIndex(nil)
}

// User returns one user.
func (s *RaftStore) User(name string) (User, bool) {
	u, ok := s.fsm.read().Users[name]
	return u, ok
}
