//go:build !wasip1

package weir

import (
	"fmt"
	"os"
)

// writeLog writes a log line to standard error: outside WebAssembly there is
// no host to log to.
func writeLog(level Level, message string) {
	fmt.Fprintf(os.Stderr, "[%s] %s\n", level, message)
}
