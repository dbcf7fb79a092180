package brokertest

import "go.uber.org/zap/zapcore"

func zapLevel(s string) zapcore.Level {
	l, err := zapcore.ParseLevel(s)
	if err != nil {
		return zapcore.WarnLevel
	}
	return l
}
