// Command poison is a test plugin in Go for Weir's containment tests: a
// record whose value starts with a mark misbehaves in that way, any other
// record passes through unchanged.
//
//	panic#…  panics (the SDK recovers it: the record fails)
//	loop#…   loops forever (the host stops it at its deadline)
//	alloc#…  allocates without end (the host's memory cap stops it)
//	error#…  fails with a non-retryable error
//	print#…  writes to standard output (the host's log) and passes through
package main

import (
	"bytes"
	"fmt"

	weir "weir.dev/sdk"
)

func init() {
	weir.Register(nil, process)
}

// hoard keeps what alloc# allocates reachable, so the collector cannot free it.
var hoard [][]byte

func process(record weir.Record) ([]weir.Output, error) {
	mark, _, _ := bytes.Cut(record.Value, []byte("#"))
	switch string(mark) {
	case "panic":
		panic("poison record " + string(record.Value))
	case "loop":
		for spin := uint64(0); ; spin++ {
			if spin == ^uint64(0) {
				break
			}
		}
	case "alloc":
		for {
			hoard = append(hoard, make([]byte, 1<<20))
		}
	case "error":
		return nil, weir.Fail("refused " + string(record.Value))
	case "print":
		fmt.Println("poison plugin printed", string(record.Value))
	}
	return []weir.Output{record.ToOutput()}, nil
}

// main is not called: the module is a reactor whose exports the host calls.
func main() {}
