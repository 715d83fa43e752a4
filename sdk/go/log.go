package weir

import "fmt"

// Level is a log severity, mirroring the host's levels.
type Level uint8

// The log levels, in the order of the host's level enum.
const (
	// LevelTrace is very detailed tracing.
	LevelTrace Level = iota
	// LevelDebug is debugging detail.
	LevelDebug
	// LevelInfo is normal operation.
	LevelInfo
	// LevelWarn is something unexpected that the plugin handled.
	LevelWarn
	// LevelError is something that failed.
	LevelError
)

// String returns the level's name: trace, debug, info, warn or error.
func (l Level) String() string {
	switch l {
	case LevelTrace:
		return "trace"
	case LevelDebug:
		return "debug"
	case LevelInfo:
		return "info"
	case LevelWarn:
		return "warn"
	case LevelError:
		return "error"
	}
	return fmt.Sprintf("Level(%d)", uint8(l))
}

// Log writes message at level to the host's log, tagged with the plugin's
// name. Outside WebAssembly (e.g. in go test) it writes to standard error.
// A level above LevelError is logged as LevelError.
func Log(level Level, message string) {
	if level > LevelError {
		level = LevelError
	}
	writeLog(level, message)
}

// Logf formats its arguments as fmt.Sprintf does and logs the result at level.
func Logf(level Level, format string, args ...any) {
	Log(level, fmt.Sprintf(format, args...))
}

// Trace logs message at LevelTrace.
func Trace(message string) { Log(LevelTrace, message) }

// Debug logs message at LevelDebug.
func Debug(message string) { Log(LevelDebug, message) }

// Info logs message at LevelInfo.
func Info(message string) { Log(LevelInfo, message) }

// Warn logs message at LevelWarn.
func Warn(message string) { Log(LevelWarn, message) }

// Error logs message at LevelError.
func Error(message string) { Log(LevelError, message) }
