// Command count-by-key is an example Weir plugin in Go with state: a running
// count of records per key, like the Rust and Python count-by-key examples.
// Each record produces one output with its key and, as the value, how many
// records with that key the partition has seen so far, itself included (as
// decimal text). The count is kept in the host's partition-scoped state as 8
// big-endian bytes, the same encoding as the Rust example's.
//
// Under --exactly-once the last count per key equals the number of input
// records with that key, across crashes; in at-least-once mode a crash can
// count a record twice (counts may be higher, never lower). Records with a
// null key are counted under the empty key.
package main

import (
	"encoding/binary"
	"strconv"

	weir "weir.dev/sdk"
)

func init() {
	weir.Register(nil, process)
}

func process(record weir.Record) ([]weir.Output, error) {
	key := record.Key
	if key == nil {
		key = []byte{}
	}
	var count uint64
	if stored, ok := weir.StateGet(key); ok && len(stored) == 8 {
		count = binary.BigEndian.Uint64(stored)
	}
	count++
	if err := weir.StateSet(key, binary.BigEndian.AppendUint64(nil, count)); err != nil {
		return nil, weir.Fail(err.Error())
	}
	return []weir.Output{record.ToOutput().WithValue([]byte(strconv.FormatUint(count, 10)))}, nil
}

// main is not called: the module is a reactor whose exports the host calls.
func main() {}
