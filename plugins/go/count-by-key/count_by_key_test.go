package main

import (
	"testing"

	weir "weir.dev/sdk"
)

func count(t *testing.T, key string) string {
	t.Helper()
	out, err := process(weir.Record{Key: []byte(key)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 {
		t.Fatalf("got %d outputs, want 1", len(out))
	}
	return string(out[0].Value)
}

func TestEachKeyCountsOnItsOwn(t *testing.T) {
	weir.ClearState()
	var got []string
	for _, key := range []string{"a", "b", "a", "a"} {
		got = append(got, count(t, key))
	}
	want := []string{"1", "1", "2", "3"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("counts %v, want %v", got, want)
		}
	}
}

func TestANullKeyCountsAsTheEmptyKey(t *testing.T) {
	weir.ClearState()
	if _, err := process(weir.Record{Key: nil}); err != nil {
		t.Fatal(err)
	}
	if got := count(t, ""); got != "2" {
		t.Fatalf("count %s, want 2", got)
	}
}
