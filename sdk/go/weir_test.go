package weir

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// use registers init and process for one test, as Register would, and resets
// the registration afterwards.
func use(t *testing.T, init InitFunc, process ProcessFunc) {
	t.Helper()
	plugin.init, plugin.process, plugin.initialized = nil, nil, false
	Register(init, process)
	t.Cleanup(func() { plugin.init, plugin.process, plugin.initialized = nil, nil, false })
}

// started registers process and runs the host's init.
func started(t *testing.T, process ProcessFunc) {
	t.Helper()
	use(t, nil, process)
	if msg, failed := runInit(Config{}); failed {
		t.Fatalf("init failed: %s", msg)
	}
}

func TestPanicFailsOnlyThatRecord(t *testing.T) {
	started(t, func(r Record) ([]Output, error) {
		if string(r.Value) == "boom" {
			var m map[string]int
			m["x"] = 1
		}
		return []Output{r.ToOutput()}, nil
	})
	out := processBatch([]Record{{Value: []byte("a")}, {Value: []byte("boom")}, {Value: []byte("c")}})
	if len(out) != 3 {
		t.Fatalf("%d outcomes, want 3", len(out))
	}
	if out[0].err != nil || out[2].err != nil || string(out[2].outputs[0].Value) != "c" {
		t.Fatalf("records around the panic: %+v %+v", out[0], out[2])
	}
	e := out[1].err
	if e == nil || e.Retryable || !strings.Contains(e.Message, "panicked") || !strings.Contains(e.Message, "nil map") {
		t.Fatalf("panicking record: %+v", e)
	}
}

func TestErrorsFailTheRecordAndKeepRetryable(t *testing.T) {
	started(t, func(r Record) ([]Output, error) {
		switch string(r.Value) {
		case "plain":
			return []Output{NewOutput(nil)}, errors.New("plain failure") // the error wins
		case "fail":
			return nil, Fail("malformed")
		case "retry":
			return nil, Retry("try later")
		case "wrapped":
			return nil, fmt.Errorf("calling upstream: %w", Retry("503"))
		}
		return nil, nil
	})
	out := processBatch([]Record{{Value: []byte("plain")}, {Value: []byte("fail")}, {Value: []byte("retry")}, {Value: []byte("wrapped")}, {}})
	want := []ProcessError{
		{Message: "plain failure"},
		{Message: "malformed"},
		{Message: "try later", Retryable: true},
		{Message: "calling upstream: 503", Retryable: true},
	}
	for i, w := range want {
		if out[i].err == nil || *out[i].err != w {
			t.Errorf("record %d: got %+v, want %+v", i, out[i].err, w)
		}
	}
	if out[4].err != nil || len(out[4].outputs) != 0 {
		t.Errorf("filtered record: %+v", out[4])
	}
}

func TestOutputsKeepTheirOrderAndNullVersusEmpty(t *testing.T) {
	started(t, func(r Record) ([]Output, error) {
		return []Output{
			r.ToOutput(),
			NewOutput([]byte("second")).WithKey([]byte{}).ToTopic("t").ToPartition(0),
			NewOutput(nil).WithHeader("h", nil),
		}, nil
	})
	out := processBatch([]Record{{Key: nil, Value: []byte{}}, {Key: []byte{}, Value: nil}})
	for i, o := range out {
		if o.err != nil || len(o.outputs) != 3 {
			t.Fatalf("record %d: %+v", i, o)
		}
	}
	first, second := out[0].outputs, out[1].outputs
	if first[0].Key != nil || first[0].Value == nil || len(first[0].Value) != 0 {
		t.Errorf("null key / empty value not kept: %#v", first[0])
	}
	if second[0].Key == nil || len(second[0].Key) != 0 || second[0].Value != nil {
		t.Errorf("empty key / null value not kept: %#v", second[0])
	}
	o := first[1]
	if string(o.Value) != "second" || o.Key == nil || o.Topic != "t" || o.Partition == nil || *o.Partition != 0 {
		t.Errorf("second output: %#v", o)
	}
	if first[2].Value != nil || len(first[2].Headers) != 1 || first[2].Headers[0].Key != "h" {
		t.Errorf("third output: %#v", first[2])
	}
}

func TestInitErrorsAndPanics(t *testing.T) {
	use(t, func(c Config) error {
		if _, err := c.Require("needed"); err != nil {
			return err
		}
		if c["needed"] == "panic" {
			panic("bad value")
		}
		return nil
	}, func(Record) ([]Output, error) { return nil, nil })
	if msg, failed := runInit(Config{}); !failed || msg != "missing plugin config `needed`: pass --plugin-config needed=VALUE" {
		t.Errorf("missing key: %q %v", msg, failed)
	}
	if out := processBatch([]Record{{}}); out[0].err == nil || !strings.Contains(out[0].err.Message, "before init") {
		t.Errorf("process after a failed init: %+v", out[0])
	}
	if msg, failed := runInit(Config{"needed": "panic"}); !failed || msg != "init panicked: bad value" {
		t.Errorf("panic: %q %v", msg, failed)
	}
	if msg, failed := runInit(Config{"needed": "yes"}); failed {
		t.Errorf("valid config refused: %q", msg)
	}
	if out := processBatch([]Record{{}}); out[0].err != nil {
		t.Errorf("process after init: %+v", out[0].err)
	}
}

func TestInitWithoutRegisterFails(t *testing.T) {
	plugin.init, plugin.process, plugin.initialized = nil, nil, false
	if msg, failed := runInit(Config{}); !failed || !strings.Contains(msg, "weir.Register") {
		t.Errorf("got %q %v", msg, failed)
	}
}

func TestRegisterTwicePanics(t *testing.T) {
	use(t, nil, func(Record) ([]Output, error) { return nil, nil })
	defer func() {
		if recover() == nil {
			t.Error("second Register did not panic")
		}
	}()
	Register(nil, func(Record) ([]Output, error) { return nil, nil })
}

func TestRecordHelpers(t *testing.T) {
	r := Record{
		Value:   []byte("hi"),
		Headers: make([]Header, 1, 4),
	}
	r.Headers[0] = Header{Key: "a", Value: []byte("1")}
	if r.Text() != "hi" || (Record{}).Text() != "" {
		t.Errorf("Text: %q", r.Text())
	}
	if v, ok := r.Header("a"); !ok || string(v) != "1" {
		t.Errorf("Header(a) = %q %v", v, ok)
	}
	if _, ok := r.Header("b"); ok {
		t.Error("Header(b) found")
	}
	o := r.ToOutput().WithHeader("b", []byte("2"))
	if len(o.Headers) != 2 || o.Headers[1].Key != "b" {
		t.Errorf("output headers: %v", o.Headers)
	}
	// WithHeader must not write into the record's spare capacity.
	if r.Headers[:2][1].Key != "" {
		t.Errorf("record's header array was written: %v", r.Headers[:2])
	}
}

func TestLevelsAndLogging(t *testing.T) {
	names := []string{"trace", "debug", "info", "warn", "error"}
	for i, n := range names {
		if Level(i).String() != n {
			t.Errorf("Level(%d) = %s, want %s", i, Level(i), n)
		}
	}
	Info("logging works natively")
	Log(Level(9), "an unknown level is logged as error")
}
