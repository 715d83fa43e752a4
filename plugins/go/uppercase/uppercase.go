// Command uppercase is an example Weir plugin in Go: it upper-cases each
// record's value (ASCII letters only), keeping its key and headers, like the
// Rust, C, Python and JavaScript examples. Tombstones pass through.
//
// Build it with weir build, or by hand into a core module for weir build to
// wrap:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o uppercase.wasm .
package main

import (
	weir "weir.dev/sdk"
)

func init() {
	weir.Register(nil, process)
}

// process upper-cases the value in place: the record's buffers belong to the
// plugin, so its value becomes the output's without a copy.
func process(record weir.Record) ([]weir.Output, error) {
	for i, c := range record.Value {
		if 'a' <= c && c <= 'z' {
			record.Value[i] = c - ('a' - 'A')
		}
	}
	return []weir.Output{record.ToOutput()}, nil
}

// main is not called: the module is a reactor whose exports the host calls.
// Go's c-shared build mode needs a main package all the same.
func main() {}
