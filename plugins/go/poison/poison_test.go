package main

import (
	"strings"
	"testing"

	weir "weir.dev/sdk"
)

func TestOtherRecordsPassThrough(t *testing.T) {
	out, err := process(weir.Record{Key: []byte("k"), Value: []byte("ok#1")})
	if err != nil || len(out) != 1 || string(out[0].Value) != "ok#1" {
		t.Fatalf("got %v, %v", out, err)
	}
}

func TestErrorFailsTheRecord(t *testing.T) {
	_, err := process(weir.Record{Value: []byte("error#2")})
	if err == nil || !strings.Contains(err.Error(), "error#2") {
		t.Fatalf("got %v", err)
	}
}
