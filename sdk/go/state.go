// Plugin state: a key-value store of byte strings that the host keeps for the
// partition being processed, across batches, crashes and rebalances.
//
// Reads see this plugin's earlier writes in the same partition, including
// those of earlier records of the same batch. A write belongs to the record
// being processed: the SDK keeps it until the process function returns without
// an error or panic, and only then hands it to the host, so a record that
// fails leaves no trace (not even for the records after it in its batch); a
// retry writes again. The host sends it to its changelog before the record's
// offset is committed. A write over the operator's caps ([plugin.state])
// fails the record (kind "state") when the host gets it.
//
// Outside WebAssembly (native go test), the same functions use an in-memory
// map, so plugin logic that keeps state unit-tests without the host;
// ClearState empties it between tests.

package weir

import "bytes"

// StateError is a write the host refused: one made outside process (in
// init), where there is no partition. Inside process, writes reach the host
// after the record is processed, and a refusal then fails the record.
type StateError struct {
	// Message says why the host refused the write.
	Message string
}

func (e *StateError) Error() string { return "state write refused: " + e.Message }

// stateWrite is a write kept until its record is processed: the key and its
// new value (remove deletes the key).
type stateWrite struct {
	key    []byte
	value  []byte
	remove bool
}

// stateRecord is the record being processed and its writes, while process
// runs for it in WebAssembly.
var stateRecord struct {
	active bool
	offset int64
	writes []stateWrite
}

// stateSender hands one write to the host. It is set by the first write, so
// a plugin that never writes does not import the host's state functions (and
// Weir keeps no state for it).
var stateSender func(offset int64, key, value []byte, remove bool) error

// StateGet returns the value of key and whether it has one.
func StateGet(key []byte) ([]byte, bool) {
	if w := keptWrite(key); w != nil {
		if w.remove {
			return nil, false
		}
		return bytes.Clone(w.value), true
	}
	return stateGetFromHost(key)
}

// StateSet sets key to value, for the record being processed. The SDK copies
// both, so the plugin may reuse them.
func StateSet(key, value []byte) error {
	return writeState(key, value, false)
}

// StateDelete removes key, for the record being processed.
func StateDelete(key []byte) error {
	return writeState(key, nil, true)
}

// keptWrite is the kept write of key for the record being processed, if any.
func keptWrite(key []byte) *stateWrite {
	if !stateRecord.active {
		return nil
	}
	for i := range stateRecord.writes {
		if bytes.Equal(stateRecord.writes[i].key, key) {
			return &stateRecord.writes[i]
		}
	}
	return nil
}

func writeState(key, value []byte, remove bool) error {
	stateSender = sendStateToHost
	if !stateRecord.active {
		return sendStateToHost(-1, key, value, remove)
	}
	value = bytes.Clone(value)
	if value == nil && !remove {
		value = []byte{}
	}
	if w := keptWrite(key); w != nil {
		w.value, w.remove = value, remove
		return nil
	}
	stateRecord.writes = append(stateRecord.writes, stateWrite{key: bytes.Clone(key), value: value, remove: remove})
	return nil
}

// beginStateRecord starts keeping the writes of the record at offset.
func beginStateRecord(offset int64) {
	stateRecord.active = true
	stateRecord.offset = offset
	clear(stateRecord.writes)
	stateRecord.writes = stateRecord.writes[:0]
}

// endStateRecord hands the record's writes to the host if it was processed,
// or drops them. The host fails the record itself if it refuses one.
func endStateRecord(processed bool) {
	if processed && stateSender != nil {
		for _, w := range stateRecord.writes {
			_ = stateSender(stateRecord.offset, w.key, w.value, w.remove)
		}
	}
	stateRecord.active = false
	clear(stateRecord.writes)
	stateRecord.writes = stateRecord.writes[:0]
}
