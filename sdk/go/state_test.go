//go:build !wasip1

package weir

import (
	"errors"
	"testing"
)

// counter counts records per key in state, failing records valued "fail"
// after its write and panicking on "panic".
func counter(r Record) ([]Output, error) {
	n := byte(0)
	if v, ok := StateGet(r.Key); ok {
		n = v[0]
	}
	if err := StateSet(r.Key, []byte{n + 1}); err != nil {
		return nil, err
	}
	switch string(r.Value) {
	case "fail":
		return nil, errors.New("failed after writing")
	case "panic":
		panic("panicked after writing")
	case "forget":
		if err := StateDelete(r.Key); err != nil {
			return nil, err
		}
	}
	return []Output{NewOutput([]byte{n + 1})}, nil
}

func TestStateWritesOfFailedRecordsLeaveNoTrace(t *testing.T) {
	ClearState()
	started(t, counter)
	key := []byte("k")
	out := processBatch([]Record{
		{Key: key, Value: []byte("ok")},
		{Key: key, Value: []byte("fail")},
		{Key: key, Value: []byte("panic")},
		{Key: key, Value: []byte("ok")},
	})
	counts := []byte{}
	for i, o := range out {
		if (i == 1 || i == 2) != (o.err != nil) {
			t.Fatalf("record %d: outcome %+v", i, o)
		}
		if o.err == nil {
			counts = append(counts, o.outputs[0].Value[0])
		}
	}
	if string(counts) != "\x01\x02" {
		t.Fatalf("counts %v: a failed record's write was seen", counts)
	}
	if v, ok := StateGet(key); !ok || v[0] != 2 {
		t.Fatalf("stored %v %v, want 2", v, ok)
	}
}

func TestStateReadsSeeTheRecordsOwnWritesAndDeletes(t *testing.T) {
	ClearState()
	started(t, func(r Record) ([]Output, error) {
		if err := StateSet([]byte("a"), []byte("1")); err != nil {
			return nil, err
		}
		v, ok := StateGet([]byte("a"))
		if !ok || string(v) != "1" {
			t.Errorf("own write not seen: %q %v", v, ok)
		}
		if _, ok := stateMemory["a"]; ok {
			t.Error("the write reached the store before the record was processed")
		}
		if err := StateDelete([]byte("a")); err != nil {
			return nil, err
		}
		if _, ok := StateGet([]byte("a")); ok {
			t.Error("own delete not seen")
		}
		return nil, StateSet([]byte("b"), nil)
	})
	if out := processBatch([]Record{{}}); out[0].err != nil {
		t.Fatal(out[0].err)
	}
	if _, ok := StateGet([]byte("a")); ok {
		t.Error("a deleted key is stored")
	}
	if v, ok := StateGet([]byte("b")); !ok || v == nil || len(v) != 0 {
		t.Errorf("a nil value is stored as empty: got %q %v", v, ok)
	}
}

func TestADeletedKeyCountsFromOneAgain(t *testing.T) {
	ClearState()
	started(t, counter)
	out := processBatch([]Record{{Key: []byte("k"), Value: []byte("forget")}, {Key: []byte("k")}})
	if out[0].err != nil || out[1].err != nil || out[1].outputs[0].Value[0] != 1 {
		t.Fatalf("a deleted count started again at %+v", out)
	}
}
