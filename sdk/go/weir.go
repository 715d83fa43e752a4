// Package weir is the Go SDK for Weir stream processors.
//
// A plugin is a Go main package that registers its functions with [Register]
// from a package init function. The host hands the plugin batches of
// [Record]s consumed from Kafka; for each record the plugin returns the
// [Output]s to produce (none filters the record out) or an error. Everything
// Kafka-related (offsets, retries, delivery) is the host's job.
//
//	package main
//
//	import (
//		"bytes"
//
//		weir "weir.dev/sdk"
//	)
//
//	func init() { weir.Register(nil, process) }
//
//	func process(r weir.Record) ([]weir.Output, error) {
//		if r.Value == nil {
//			return nil, nil // drop tombstones
//		}
//		return []weir.Output{r.ToOutput().WithValue(bytes.ToUpper(r.Value))}, nil
//	}
//
//	func main() {}
//
// Errors: returning an error from process fails that record. A [ProcessError]
// made with [Retry] (or found in the error's chain by errors.As) tells the host
// that trying the record again may succeed; any other error, [Fail]'s
// included, is not retryable. A panic in process is recovered and fails only
// that record, with the panic value in its message; a panic in init is
// reported as init's error.
//
// Garbage collection: the SDK lets Go's collector run only while init or
// process runs (the host forbids the WASI calls it makes at other times).
// Change its settings (debug.SetGCPercent, debug.SetMemoryLimit) in the init
// function given to Register or in process, not in a package init function,
// and do not call runtime.GC from other goroutines.
//
// Null versus empty: a nil Key or Value is a null key or value (a tombstone),
// a non-nil empty slice is an empty one. Records from the host follow that
// rule, and so do outputs.
//
// The types here are plain Go: plugin logic builds and tests natively with
// go test, where [Log] writes to standard error. For Weir, the plugin compiles
// to a WASI preview 1 reactor module (weir build, or
// GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared) whose exports follow
// the component model's canonical ABI for Weir's WIT world; weir build wraps
// it into a component.
package weir

import (
	"errors"
	"fmt"
	"runtime/debug"
)

// Header is a Kafka record header.
type Header struct {
	// Key is the header name.
	Key string
	// Value is the header value (a null value on the wire arrives empty).
	Value []byte
}

// Record is one record consumed from Kafka.
type Record struct {
	// Topic is the topic the record came from.
	Topic string
	// Partition is the partition the record came from.
	Partition int32
	// Offset is the record's offset in its partition.
	Offset int64
	// Timestamp is the record's timestamp in milliseconds since the Unix
	// epoch, or nil if it has none.
	Timestamp *int64
	// Key is the record key: nil for a null key, non-nil (possibly empty)
	// otherwise.
	Key []byte
	// Value is the record value: nil for a null value (a tombstone), non-nil
	// (possibly empty) otherwise.
	Value []byte
	// Headers are the record headers in wire order.
	Headers []Header
}

// Text returns the value as a string ("" for a null value). The bytes are
// copied and not checked to be UTF-8.
func (r Record) Text() string {
	return string(r.Value)
}

// Header returns the value of the first header named name, and whether there
// is one.
func (r Record) Header(name string) ([]byte, bool) {
	for _, h := range r.Headers {
		if h.Key == name {
			return h.Value, true
		}
	}
	return nil, false
}

// ToOutput returns an output that carries this record's key, value and headers
// over unchanged, to the pipeline's output topic. The slices are shared, not
// copied.
func (r Record) ToOutput() Output {
	return Output{Key: r.Key, Value: r.Value, Headers: r.Headers}
}

// Output is one record for the host to produce.
type Output struct {
	// Topic is the target topic; "" means the pipeline's output topic (Kafka
	// topic names are never empty).
	Topic string
	// Partition is the target partition; nil lets the producer's partitioner
	// choose by key.
	Partition *int32
	// Key is the record key: nil for a null key.
	Key []byte
	// Value is the record value: nil for a null value (a tombstone).
	Value []byte
	// Headers are the record headers, in order.
	Headers []Header
}

// NewOutput returns an output with this value, no key and no headers.
func NewOutput(value []byte) Output {
	return Output{Value: value}
}

// WithValue returns o with its value replaced.
func (o Output) WithValue(value []byte) Output {
	o.Value = value
	return o
}

// WithKey returns o with its key replaced.
func (o Output) WithKey(key []byte) Output {
	o.Key = key
	return o
}

// WithHeader returns o with a header appended. The header slice is copied
// first, so the record o was made from keeps its own headers.
func (o Output) WithHeader(key string, value []byte) Output {
	n := len(o.Headers)
	o.Headers = append(o.Headers[:n:n], Header{Key: key, Value: value})
	return o
}

// ToTopic returns o sent to topic instead of the pipeline's output topic.
func (o Output) ToTopic(topic string) Output {
	o.Topic = topic
	return o
}

// ToPartition returns o sent to a fixed partition instead of the one the
// partitioner would choose.
func (o Output) ToPartition(partition int32) Output {
	o.Partition = &partition
	return o
}

// ProcessError is a plugin's refusal to process one record.
type ProcessError struct {
	// Message says what went wrong, for the operator.
	Message string
	// Retryable says whether trying the same record again may succeed (a
	// transient condition).
	Retryable bool
}

// Error returns the message.
func (e *ProcessError) Error() string {
	return e.Message
}

// Fail returns an error that fails the record for good (e.g. malformed input).
func Fail(message string) error {
	return &ProcessError{Message: message}
}

// Retry returns an error from a transient condition: the host may try the
// record again.
func Retry(message string) error {
	return &ProcessError{Message: message, Retryable: true}
}

// Config is the plugin's key/value configuration, as given to the host
// (--plugin-config key=value or the [plugin.config] table). When a key is
// given twice, the later value wins.
type Config map[string]string

// Require returns the value configured for key, or an error naming the missing
// key and how to set it.
func (c Config) Require(key string) (string, error) {
	if v, ok := c[key]; ok {
		return v, nil
	}
	return "", fmt.Errorf("missing plugin config `%s`: pass --plugin-config %s=VALUE", key, key)
}

// InitFunc builds the plugin's state from its configuration. It is called
// once per plugin instance, before any record. An error stops the pipeline
// before it consumes anything and is shown to the operator.
type InitFunc func(config Config) error

// ProcessFunc processes one record: it returns the records to produce (none
// filters the record out) or an error that fails the record. Records of one
// partition arrive in offset order.
type ProcessFunc func(record Record) ([]Output, error)

// plugin is what Register recorded, and whether the host's init succeeded.
var plugin struct {
	init        InitFunc
	process     ProcessFunc
	initialized bool
}

// Register makes init (which may be nil) and process the plugin's entry
// points. Call it exactly once, from an init function of the plugin's main
// package: the WebAssembly module runs package initialization before the host
// calls the plugin.
func Register(init InitFunc, process ProcessFunc) {
	if process == nil {
		panic("weir.Register: process must not be nil")
	}
	if plugin.process != nil {
		panic("weir.Register called more than once")
	}
	plugin.init, plugin.process, plugin.initialized = init, process, false
}

// outcome is the result of processing one record: outputs, or err if non-nil.
type outcome struct {
	outputs []Output
	err     *ProcessError
}

// runInit runs the registered init function for the host's init call and
// returns the error message to report, if it failed.
func runInit(config Config) (message string, failed bool) {
	if plugin.process == nil {
		return "no processor registered: call weir.Register from an init function of the plugin's main package", true
	}
	defer func() {
		if v := recover(); v != nil {
			Logf(LevelError, "init panicked: %v\n%s", v, debug.Stack())
			message, failed = fmt.Sprintf("init panicked: %v", v), true
		}
	}()
	plugin.initialized = false
	if plugin.init != nil {
		if err := plugin.init(config); err != nil {
			return err.Error(), true
		}
	}
	plugin.initialized = true
	return "", false
}

// processBatch runs the registered process function over a batch: one outcome
// per record, in order.
func processBatch(batch []Record) []outcome {
	outcomes := make([]outcome, len(batch))
	for i := range batch {
		outcomes[i] = processRecord(batch[i])
	}
	return outcomes
}

// processRecord processes one record, turning errors and panics into a failed
// outcome.
func processRecord(r Record) (o outcome) {
	if !plugin.initialized {
		return outcome{err: &ProcessError{Message: "the host called process before init"}}
	}
	beginStateRecord(r.Offset)
	defer func() {
		if v := recover(); v != nil {
			Logf(LevelError, "process panicked on %s/%d@%d: %v\n%s", r.Topic, r.Partition, r.Offset, v, debug.Stack())
			o = outcome{err: &ProcessError{Message: fmt.Sprintf("process panicked: %v", v)}}
		}
		endStateRecord(o.err == nil)
	}()
	outputs, err := plugin.process(r)
	if err != nil {
		return outcome{err: toProcessError(err)}
	}
	return outcome{outputs: outputs}
}

// toProcessError turns any error into the ProcessError the host receives: the
// error's full message, retryable if a ProcessError in its chain is.
func toProcessError(err error) *ProcessError {
	pe := &ProcessError{Message: err.Error()}
	var inner *ProcessError
	if errors.As(err, &inner) && inner != nil {
		pe.Retryable = inner.Retryable
	}
	return pe
}
