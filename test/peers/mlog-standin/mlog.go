// Package mlog is a local stand-in for monis.app/mlog, which the Go module
// proxy refuses, written for the peer builds under test/peers. It provides
// only the names the upstream driver and its e2e provider use (main.go and
// pkg/secrets-store/server.go of the driver; main of the e2e provider):
// Fatal, Setup, FormatText, FormatJSON, ValidateAndSetKlogLevelAndFormatGlobally
// and Error. Output goes through klog; verbosity comes from klog's own -v flag.
package mlog

import (
	"context"
	"fmt"
	"os"

	"k8s.io/klog/v2"
)

// LogFormat names an output format.
type LogFormat string

const (
	// FormatText is klog's usual text output.
	FormatText LogFormat = "text"
	// FormatJSON is accepted, but the stand-in keeps writing text.
	FormatJSON LogFormat = "json"
)

// Setup prepares logging and returns the function that flushes it.
func Setup() func() {
	return klog.Flush
}

// ValidateAndSetKlogLevelAndFormatGlobally checks the arguments; klog's own
// flags already carry the level, and the format stays text.
func ValidateAndSetKlogLevelAndFormatGlobally(_ context.Context, level klog.Level, format LogFormat) error {
	if level < 0 {
		return fmt.Errorf("invalid log level %d", level)
	}
	switch format {
	case FormatText:
	case FormatJSON:
		klog.InfoS("mlog stand-in: JSON log format is not available, logging as text")
	default:
		return fmt.Errorf("unknown log format %q", format)
	}
	return nil
}

// Error logs msg with err and the key/value pairs.
func Error(msg string, err error, keysAndValues ...any) {
	klog.ErrorS(err, msg, keysAndValues...)
}

// Fatal logs err with the key/value pairs, flushes, and exits with status 1.
func Fatal(err error, keysAndValues ...any) {
	klog.ErrorS(err, "fatal", keysAndValues...)
	klog.Flush()
	os.Exit(1)
}
