package main

import (
	"bytes"
	"testing"

	weir "weir.dev/sdk"
)

func TestUppercasesValueAndKeepsKeyAndHeaders(t *testing.T) {
	record := weir.Record{
		Key:     []byte("k1"),
		Value:   []byte("hello, w\xc3\xb6rld"),
		Headers: []weir.Header{{Key: "trace", Value: []byte("abc")}},
	}
	out, err := process(record)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 {
		t.Fatalf("got %d outputs, want 1", len(out))
	}
	if got := out[0].Value; !bytes.Equal(got, []byte("HELLO, W\xc3\xb6RLD")) {
		t.Errorf("value %q", got)
	}
	if got := out[0].Key; !bytes.Equal(got, []byte("k1")) {
		t.Errorf("key %q", got)
	}
	if len(out[0].Headers) != 1 || out[0].Headers[0].Key != "trace" || string(out[0].Headers[0].Value) != "abc" {
		t.Errorf("headers %v", out[0].Headers)
	}
	if out[0].Topic != "" || out[0].Partition != nil {
		t.Errorf("routed to %q/%v, want the defaults", out[0].Topic, out[0].Partition)
	}
}

func TestTombstonesPassThrough(t *testing.T) {
	out, err := process(weir.Record{Key: []byte("k")})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || out[0].Value != nil || string(out[0].Key) != "k" {
		t.Fatalf("got %+v, want one tombstone with key k", out)
	}
}

func TestEmptyValueStaysEmptyNotNull(t *testing.T) {
	out, _ := process(weir.Record{Value: []byte{}})
	if out[0].Value == nil || len(out[0].Value) != 0 {
		t.Fatalf("value %#v, want empty non-nil", out[0].Value)
	}
}
