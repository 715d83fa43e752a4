//go:build !wasip1

package weir

import "bytes"

// stateMemory is native tests' state: outside WebAssembly there is no host.
var stateMemory = map[string][]byte{}

// ClearState empties the in-memory state of native tests (in WebAssembly,
// where the host owns the state, it does nothing).
func ClearState() {
	clear(stateMemory)
}

func stateGetFromHost(key []byte) ([]byte, bool) {
	value, ok := stateMemory[string(key)]
	return bytes.Clone(value), ok
}

func sendStateToHost(_ int64, key, value []byte, remove bool) error {
	if remove {
		delete(stateMemory, string(key))
	} else {
		stateMemory[string(key)] = bytes.Clone(value)
	}
	return nil
}
