package metadata

import (
	"errors"
	"strings"
	"testing"

	"github.com/stratalog/strata/pkg/apierr"
)

func TestValidateTopicName(t *testing.T) {
	ok := []string{"a", "orders", "Orders.v2_x-y", strings.Repeat("x", 249), "_a"}
	bad := []string{"", ".", "..", strings.Repeat("x", 250), "a/b", "a b", "ä", "__internal", "../etc"}
	for _, n := range ok {
		if err := ValidateTopicName(n); err != nil {
			t.Errorf("%q: unexpected %v", n, err)
		}
	}
	for _, n := range bad {
		err := ValidateTopicName(n)
		if !errors.Is(err, apierr.ErrInvalidTopic) {
			t.Errorf("%q: got %v, want invalid topic", n, err)
		}
	}
}

func TestValidatePartitions(t *testing.T) {
	for _, n := range []int32{0, -1, MaxPartitions + 1} {
		if !errors.Is(ValidatePartitions(n), apierr.ErrInvalidPartitions) {
			t.Errorf("%d accepted", n)
		}
	}
	if err := ValidatePartitions(1); err != nil {
		t.Error(err)
	}
}

func TestParseTopicConfig(t *testing.T) {
	tests := []struct {
		name    string
		topic   map[string]string
		want    func(TopicConfig) bool
		wantErr error
	}{
		{"defaults", nil, func(c TopicConfig) bool {
			return c.RetentionMs == 604800000 && c.MaxMessageBytes == 1<<20 && c.CleanupPolicy == "delete" && c.SegmentBytes == 1<<30
		}, nil},
		{"set", map[string]string{"retention.ms": "-1", "segment.bytes": "1048576", "cleanup.policy": "delete,compact"}, func(c TopicConfig) bool {
			return c.RetentionMs == -1 && c.SegmentBytes == 1<<20 && c.CleanupPolicy == "compact,delete"
		}, nil},
		{"unknown key", map[string]string{"retention.hours": "1"}, nil, apierr.ErrInvalidConfig},
		{"not a number", map[string]string{"retention.ms": "soon"}, nil, apierr.ErrInvalidConfig},
		{"below range", map[string]string{"retention.ms": "-2"}, nil, apierr.ErrInvalidConfig},
		{"tiny segment", map[string]string{"segment.bytes": "10"}, nil, apierr.ErrInvalidConfig},
		{"bad policy", map[string]string{"cleanup.policy": "shred"}, nil, apierr.ErrInvalidConfig},
		{"bad bool", map[string]string{"immutable": "yes"}, nil, apierr.ErrInvalidConfig},
		{"message over segment", map[string]string{"segment.bytes": "1024", "max.message.bytes": "2048"}, nil, apierr.ErrInvalidConfig},
		{"immutable", map[string]string{"immutable": "true"}, func(c TopicConfig) bool {
			return c.Immutable && c.RetentionMs == -1 && c.RetentionBytes == -1
		}, nil},
		{"immutable with retention", map[string]string{"immutable": "true", "retention.ms": "1000"}, nil, apierr.ErrInvalidConfig},
		{"immutable compacted", map[string]string{"immutable": "true", "cleanup.policy": "compact"}, nil, apierr.ErrInvalidConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseTopicConfig(tt.topic, map[string]string{"retention.ms": "604800000"})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.want(c) {
				t.Fatalf("unexpected config %+v", c)
			}
		})
	}
}

func TestCheckAlterImmutable(t *testing.T) {
	on := map[string]string{"immutable": "true"}
	if err := CheckAlter(on, map[string]string{}); !errors.Is(err, apierr.ErrPolicyViolation) {
		t.Fatalf("removing immutable: %v", err)
	}
	if err := CheckAlter(on, map[string]string{"immutable": "false"}); !errors.Is(err, apierr.ErrPolicyViolation) {
		t.Fatalf("immutable=false: %v", err)
	}
	if err := CheckAlter(map[string]string{}, on); err != nil {
		t.Fatalf("turning on: %v", err)
	}
}
