package replication

import (
	"fmt"
	"io"
	"log"
	"strings"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// zapHCLog adapts a *zap.Logger to hclog.Logger, the logger hashicorp/raft
// takes. It is the only such adapter in Strata: raft's key/value pairs
// become zap fields, its levels map to zap's (Trace and Info to Debug), and
// the level is zap's, so SetLevel is ignored. raft's warnings and errors
// that describe raft working as designed go to Debug too (routine.go):
// operators page on errors.
type zapHCLog struct {
	z       *zap.Logger
	name    string
	implied []any
}

// NewHCLog adapts a zap logger to hashicorp/raft's hclog, once for every
// raft in the broker.
func NewHCLog(z *zap.Logger, name string) hclog.Logger {
	return &zapHCLog{z: z.Named(name), name: name}
}

func fields(args []any) []zap.Field {
	fs := make([]zap.Field, 0, (len(args)+1)/2)
	for i := 0; i < len(args); i += 2 {
		if i+1 == len(args) {
			fs = append(fs, zap.Any("EXTRA_VALUE", args[i]))
			break
		}
		k, ok := args[i].(string)
		if !ok {
			k = fmt.Sprint(args[i])
		}
		fs = append(fs, zap.Any(k, args[i+1]))
	}
	return fs
}

func (l *zapHCLog) Log(level hclog.Level, msg string, args ...any) {
	if level >= hclog.Warn && routine(msg, args) {
		level = hclog.Debug
	} else if level == hclog.Error && heartbeatTimeout(msg, args) {
		level = hclog.Warn
	}
	switch level {
	case hclog.Trace, hclog.Debug, hclog.Info:
		// raft's info lines (state changes, elections) come per group: with
		// hundreds of partitions they drown a broker's own log. The group
		// logs leadership changes itself.
		l.z.Debug(msg, fields(args)...)
	case hclog.Warn:
		l.z.Warn(msg, fields(args)...)
	case hclog.Error:
		l.z.Error(msg, fields(args)...)
	default:
		l.z.Info(msg, fields(args)...)
	}
}

func (l *zapHCLog) Trace(msg string, args ...any) { l.Log(hclog.Trace, msg, args...) }
func (l *zapHCLog) Debug(msg string, args ...any) { l.Log(hclog.Debug, msg, args...) }
func (l *zapHCLog) Info(msg string, args ...any)  { l.Log(hclog.Info, msg, args...) }
func (l *zapHCLog) Warn(msg string, args ...any)  { l.Log(hclog.Warn, msg, args...) }
func (l *zapHCLog) Error(msg string, args ...any) { l.Log(hclog.Error, msg, args...) }

func (l *zapHCLog) IsTrace() bool { return false }
func (l *zapHCLog) IsDebug() bool { return l.z.Core().Enabled(zapcore.DebugLevel) }
func (l *zapHCLog) IsInfo() bool  { return l.z.Core().Enabled(zapcore.InfoLevel) }
func (l *zapHCLog) IsWarn() bool  { return l.z.Core().Enabled(zapcore.WarnLevel) }
func (l *zapHCLog) IsError() bool { return l.z.Core().Enabled(zapcore.ErrorLevel) }

func (l *zapHCLog) ImpliedArgs() []any { return l.implied }

func (l *zapHCLog) With(args ...any) hclog.Logger {
	return &zapHCLog{z: l.z.With(fields(args)...), name: l.name, implied: append(l.implied[:len(l.implied):len(l.implied)], args...)}
}

func (l *zapHCLog) Name() string { return l.name }

func (l *zapHCLog) Named(name string) hclog.Logger {
	full := name
	if l.name != "" {
		full = l.name + "." + name
	}
	return &zapHCLog{z: l.z.Named(name), name: full, implied: l.implied}
}

func (l *zapHCLog) ResetNamed(name string) hclog.Logger {
	return &zapHCLog{z: l.z.Named(name), name: name, implied: l.implied}
}

func (l *zapHCLog) SetLevel(hclog.Level) {}

func (l *zapHCLog) GetLevel() hclog.Level {
	switch {
	case l.IsDebug():
		return hclog.Debug
	case l.IsInfo():
		return hclog.Info
	case l.IsWarn():
		return hclog.Warn
	}
	return hclog.Error
}

func (l *zapHCLog) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(l.StandardWriter(opts), "", 0)
}

func (l *zapHCLog) StandardWriter(*hclog.StandardLoggerOptions) io.Writer { return stdWriter{l} }

// stdWriter turns lines written by a standard logger into Info entries.
type stdWriter struct{ l *zapHCLog }

func (w stdWriter) Write(p []byte) (int, error) {
	w.l.z.Info(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
