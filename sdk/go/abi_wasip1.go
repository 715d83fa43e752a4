//go:build wasip1

// The WebAssembly side of the SDK: the core-module exports and imports that
// the component model's canonical ABI expects for the `plugin` world of
// weir:processor@0.1.1 (wit/processor.wit), with wit-component's names.
//
// Exports:
//
//	weir:processor/processor@0.1.1#init             (i32 ptr, i32 len) -> i32
//	cabi_post_weir:processor/processor@0.1.1#init   (i32) -> ()
//	weir:processor/processor@0.1.1#process          (i32 ptr, i32 len) -> i32
//	cabi_post_weir:processor/processor@0.1.1#process (i32) -> ()
//	cabi_realloc (i32 old_ptr, i32 old_size, i32 align, i32 new_size) -> i32
//	cabi_realloc_adapter (same type): the WASI adapter's allocator, see below
//	_initialize and memory (from the Go toolchain, -buildmode=c-shared)
//
// Imports: weir:processor/host@0.1.1 log (i32 level, i32 ptr, i32 len) -> ()
// (always: the SDK logs recovered panics), and wasi_snapshot_preview1 (the Go
// runtime's). _initialize (Go runtime and package init, which runs Register)
// is called once by the component when it is instantiated (wit-component
// makes it the start of the instance), before any other export.
//
// Canonical ABI layouts on wasm32 (bytes). A string or list is (ptr i32 @0,
// len i32 @4), size 8, align 4. An option or result is a u8 discriminant
// (0 = none/ok, 1 = some/err) then the payload at the payload's alignment.
//
//	header           size 16 align 4: key @0, value @8
//	input-record     size 72 align 8: topic @0, partition @8, offset @16,
//	                 timestamp @24 (option<s64>: payload @+8), key @40,
//	                 value @52 (option<list<u8>>: payload @+4), headers @64
//	output-record    size 52 align 4: topic @0 (option<string>: payload @+4),
//	                 partition @12 (option<s32>: payload @+4), key @20,
//	                 value @32, headers @44
//	process-error    size 12 align 4: message @0, retryable @8 (bool as u8)
//	outcome          size 16 align 4: result<list<output-record>,
//	                 process-error>, payload @4
//	tuple<string,string> size 16 align 4: 0 @0, 1 @8
//	init's return area (result<_, string>) size 12 align 4, payload @4
//	process's return area (list<outcome>) size 8 align 4
//
// Memory: every buffer cabi_realloc hands to the host is a Go allocation kept
// in pinned until the export the host is preparing has lifted its arguments.
// Lifting does not copy: strings and byte slices of the Records alias those
// buffers, which stay alive as long as Go values point at them. Lowering does
// not copy either: the results point at the Go strings and slices themselves,
// kept reachable in retained until the matching cabi_post_ export. Go's
// garbage collector does not move heap objects, so these addresses are stable.

package weir

import (
	"math"
	"runtime"
	"runtime/debug"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// Layout of the WIT types in the canonical ABI on wasm32: see the table above.
const (
	stringSize      = 8
	stringAlign     = 4
	stringPtrOffset = 0
	stringLenOffset = 4

	listSize      = 8
	listAlign     = 4
	listPtrOffset = 0
	listLenOffset = 4

	optionS32Size           = 8
	optionS32Align          = 4
	optionS32PayloadOffset  = 4
	optionS64Size           = 16
	optionS64Align          = 8
	optionS64PayloadOffset  = 8
	optionListSize          = 12
	optionListAlign         = 4
	optionListPayloadOffset = 4

	headerSize        = 16
	headerAlign       = 4
	headerKeyOffset   = 0
	headerValueOffset = 8

	inputRecordSize            = 72
	inputRecordAlign           = 8
	inputRecordTopicOffset     = 0
	inputRecordPartitionOffset = 8
	inputRecordOffsetOffset    = 16
	inputRecordTimestampOffset = 24
	inputRecordKeyOffset       = 40
	inputRecordValueOffset     = 52
	inputRecordHeadersOffset   = 64

	outputRecordSize            = 52
	outputRecordAlign           = 4
	outputRecordTopicOffset     = 0
	outputRecordPartitionOffset = 12
	outputRecordKeyOffset       = 20
	outputRecordValueOffset     = 32
	outputRecordHeadersOffset   = 44

	processErrorSize            = 12
	processErrorAlign           = 4
	processErrorMessageOffset   = 0
	processErrorRetryableOffset = 8

	outcomeSize          = 16
	outcomeAlign         = 4
	outcomePayloadOffset = 4

	configEntrySize        = 16 // tuple<string, string>
	configEntryAlign       = 4
	configEntryKeyOffset   = 0
	configEntryValueOffset = 8

	initResultSize          = 12 // result<_, string>
	initResultAlign         = 4
	initResultPayloadOffset = 4

	processResultSize  = 8 // list<outcome>
	processResultAlign = 4
)

// at converts a linear-memory address to a pointer. Go on wasm addresses the
// whole 32-bit memory from 0, so an address is a pointer.
func at(addr uint32) unsafe.Pointer {
	return unsafe.Add(unsafe.Pointer(nil), uintptr(addr))
}

// addrOf converts a pointer to its linear-memory address.
func addrOf(p unsafe.Pointer) uint32 {
	return uint32(uintptr(p))
}

func load8(a uint32) uint8   { return *(*uint8)(at(a)) }
func load32(a uint32) uint32 { return *(*uint32)(at(a)) }
func load64(a uint32) uint64 { return *(*uint64)(at(a)) }

func store8(a uint32, v uint8)   { *(*uint8)(at(a)) = v }
func store32(a uint32, v uint32) { *(*uint32)(at(a)) = v }

// ---- cabi_realloc -----------------------------------------------------------

// pin is one allocation handed to the host by cabi_realloc.
type pin struct {
	base unsafe.Pointer // the Go allocation, kept reachable
	addr uint32         // the aligned address given to the host
}

// pinned holds what cabi_realloc allocated since the last export started.
var pinned []pin

// zeroSized is the (8-aligned) address given for zero-size allocations.
var zeroSized uint64

// allocate returns a zeroed Go allocation of size bytes and an address in it
// aligned to align.
func allocate(size, align uint32) (base unsafe.Pointer, addr uint32) {
	switch {
	case align <= 1:
		b := make([]byte, size)
		base = unsafe.Pointer(unsafe.SliceData(b))
		return base, addrOf(base)
	case align <= 8:
		w := make([]uint64, (uint64(size)+7)/8)
		base = unsafe.Pointer(unsafe.SliceData(w))
		return base, addrOf(base)
	default:
		b := make([]byte, uint64(size)+uint64(align)-1)
		base = unsafe.Pointer(unsafe.SliceData(b))
		return base, alignUp(addrOf(base), align)
	}
}

func alignUp(a, align uint32) uint32 {
	return (a + align - 1) &^ (align - 1)
}

// cabiRealloc allocates guest memory for the host, which fills it with the
// arguments of the export it is about to call.
//
//go:wasmexport cabi_realloc
func cabiRealloc(oldPtr, oldSize, align, newSize uint32) uint32 {
	if align == 0 {
		align = 1
	}
	var addr uint32
	if newSize == 0 {
		addr = alignUp(addrOf(unsafe.Pointer(&zeroSized)), align)
	} else {
		var base unsafe.Pointer
		base, addr = allocate(newSize, align)
		pinned = append(pinned, pin{base: base, addr: addr})
	}
	if oldPtr != 0 {
		copy(unsafe.Slice((*byte)(at(addr)), newSize), unsafe.Slice((*byte)(at(oldPtr)), min(oldSize, newSize)))
		for i := len(pinned) - 1; i >= 0; i-- {
			if pinned[i].addr == oldPtr {
				pinned = append(pinned[:i], pinned[i+1:]...)
				break
			}
		}
	}
	return addr
}

// ---- no imports outside an export ------------------------------------------

// The component model forbids a guest to call an import while the host is
// lowering arguments into it (cabi_realloc) or after an export returned (the
// cabi_post_ functions): the call traps with "cannot leave component
// instance". Go's runtime calls WASI (the clock) when it collects garbage, and
// an allocation in cabi_realloc may start a collection. So the collector runs
// only inside init and process: it is switched off when they return (GC
// percent -1 and no memory limit, which would also start collections) and back
// on, with the plugin's own settings (GOGC's and GOMEMLIMIT's by default),
// when they are called. Switching it off waits for a collection in progress
// to finish, inside the export. Plugin goroutines must not call runtime.GC.

// gcPercent and memoryLimit are the collector's settings while init or
// process runs.
var (
	gcPercent   int
	memoryLimit int64
)

func init() {
	leaveExport()
	// Allocation sampling for memory profiles is of no use in a plugin.
	runtime.MemProfileRate = 0
}

// enterExport lets the collector run, for the export now called. A plugin
// that changed the settings since (in its package init, which runs after
// this package's) keeps its own.
func enterExport() {
	if previous := debug.SetGCPercent(gcPercent); previous >= 0 {
		debug.SetGCPercent(previous)
		gcPercent = previous
	}
	if previous := debug.SetMemoryLimit(memoryLimit); previous != math.MaxInt64 {
		debug.SetMemoryLimit(previous)
		memoryLimit = previous
	}
}

// leaveExport stops the collector until the next export is called.
func leaveExport() {
	gcPercent = debug.SetGCPercent(-1)
	memoryLimit = debug.SetMemoryLimit(math.MaxInt64)
}

// ---- cabi_realloc_adapter ---------------------------------------------------

// adapterArenaSize is the memory reserved for the WASI preview 1 adapter: its
// 64 KiB shadow stack and its state (at most 64 KiB), with room to spare.
const adapterArenaSize = 256 << 10

// adapterArena backs cabi_realloc_adapter. It is static (bss: it costs no
// bytes in the module), so neither the Go heap nor memory.grow ever hands its
// pages to anyone else.
var adapterArena [adapterArenaSize / 8]uint64

// adapterArenaUsed is how many bytes of adapterArena are handed out.
var adapterArenaUsed uint32

// cabiReallocAdapter is the allocator wit-component gives the WASI adapter
// instead of cabi_realloc. The adapter allocates on its first call, which the
// Go runtime makes while it initializes, before Go code can allocate (and a
// wasmexport function runs on the caller's stack then), so this bump
// allocator must not allocate, grow the stack or call anything: it is
// nosplit. Memory is never freed; 0 (making the adapter trap) means the arena
// is exhausted.
//
//go:wasmexport cabi_realloc_adapter
//go:nosplit
func cabiReallocAdapter(oldPtr, oldSize, align, newSize uint32) uint32 {
	base := uint32(uintptr(unsafe.Pointer(&adapterArena)))
	if align == 0 {
		align = 1
	}
	start := (base + adapterArenaUsed + align - 1) &^ (align - 1)
	if start-base > adapterArenaSize || newSize > adapterArenaSize-(start-base) {
		return 0
	}
	if oldPtr != 0 {
		n := oldSize
		if newSize < n {
			n = newSize
		}
		for i := uint32(0); i < n; i++ {
			*(*byte)(unsafe.Add(unsafe.Pointer(&adapterArena), start-base+i)) = *(*byte)(unsafe.Add(unsafe.Pointer(nil), uintptr(oldPtr+i)))
		}
	}
	adapterArenaUsed = start - base + newSize
	return start
}

// unpinAll forgets the allocations made for the current export's arguments,
// once lifting made Go values point at the ones still needed.
func unpinAll() {
	clear(pinned)
	pinned = pinned[:0]
}

// ---- lifting ----------------------------------------------------------------

func liftString(a uint32) string {
	n := load32(a + stringLenOffset)
	if n == 0 {
		return ""
	}
	return unsafe.String((*byte)(at(load32(a+stringPtrOffset))), n)
}

// liftBytes lifts a list<u8>; an empty list is a non-nil empty slice.
func liftBytes(a uint32) []byte {
	n := load32(a + listLenOffset)
	if n == 0 {
		return []byte{}
	}
	return unsafe.Slice((*byte)(at(load32(a+listPtrOffset))), n)
}

// liftOptionBytes lifts an option<list<u8>>: none is nil.
func liftOptionBytes(a uint32) []byte {
	if load8(a) == 0 {
		return nil
	}
	return liftBytes(a + optionListPayloadOffset)
}

func liftHeaders(a uint32) []Header {
	n := load32(a + listLenOffset)
	if n == 0 {
		return nil
	}
	p := load32(a + listPtrOffset)
	headers := make([]Header, n)
	for i := range headers {
		h := p + uint32(i)*headerSize
		headers[i] = Header{Key: liftString(h + headerKeyOffset), Value: liftBytes(h + headerValueOffset)}
	}
	return headers
}

func liftBatch(p, n uint32) []Record {
	batch := make([]Record, n)
	timestamps := make([]int64, n)
	for i := range batch {
		r := p + uint32(i)*inputRecordSize
		rec := &batch[i]
		rec.Topic = liftString(r + inputRecordTopicOffset)
		rec.Partition = int32(load32(r + inputRecordPartitionOffset))
		rec.Offset = int64(load64(r + inputRecordOffsetOffset))
		if load8(r+inputRecordTimestampOffset) != 0 {
			timestamps[i] = int64(load64(r + inputRecordTimestampOffset + optionS64PayloadOffset))
			rec.Timestamp = &timestamps[i]
		}
		rec.Key = liftOptionBytes(r + inputRecordKeyOffset)
		rec.Value = liftOptionBytes(r + inputRecordValueOffset)
		rec.Headers = liftHeaders(r + inputRecordHeadersOffset)
	}
	return batch
}

// ---- lowering ---------------------------------------------------------------

// retained keeps what the last export returned reachable until its cabi_post_
// export: the Go values the results point into and the buffers laid out for
// them.
var retained struct {
	outcomes []outcome
	strings  []string
	buffers  [][]uint64
}

// Return areas: static, so they never move or get collected.
var (
	initReturn    [(initResultSize + 7) / 8]uint64
	processReturn [(processResultSize + 7) / 8]uint64
)

func releaseRetained() {
	retained.outcomes = nil
	clear(retained.strings)
	retained.strings = retained.strings[:0]
	clear(retained.buffers)
	retained.buffers = retained.buffers[:0]
}

// buffer returns the address of a zeroed, retained, 8-aligned buffer.
func buffer(size uint32) uint32 {
	if size == 0 {
		return 0
	}
	w := make([]uint64, (size+7)/8)
	retained.buffers = append(retained.buffers, w)
	return addrOf(unsafe.Pointer(unsafe.SliceData(w)))
}

// lowerString stores s at a. The host traps on invalid UTF-8, so such a
// string is replaced by a valid copy (kept until post-return).
func lowerString(a uint32, s string) {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
		retained.strings = append(retained.strings, s)
	}
	store32(a+stringPtrOffset, addrOf(unsafe.Pointer(unsafe.StringData(s))))
	store32(a+stringLenOffset, uint32(len(s)))
}

func lowerBytes(a uint32, b []byte) {
	store32(a+listPtrOffset, addrOf(unsafe.Pointer(unsafe.SliceData(b))))
	store32(a+listLenOffset, uint32(len(b)))
}

// lowerOptionBytes stores b as an option<list<u8>>: nil is none.
func lowerOptionBytes(a uint32, b []byte) {
	if b == nil {
		store8(a, 0)
		return
	}
	store8(a, 1)
	lowerBytes(a+optionListPayloadOffset, b)
}

func lowerHeaders(a uint32, headers []Header) {
	p := buffer(uint32(len(headers)) * headerSize)
	for i, h := range headers {
		e := p + uint32(i)*headerSize
		lowerString(e+headerKeyOffset, h.Key)
		lowerBytes(e+headerValueOffset, h.Value)
	}
	store32(a+listPtrOffset, p)
	store32(a+listLenOffset, uint32(len(headers)))
}

func lowerOutput(a uint32, o *Output) {
	if o.Topic != "" {
		store8(a+outputRecordTopicOffset, 1)
		lowerString(a+outputRecordTopicOffset+optionListPayloadOffset, o.Topic)
	}
	if o.Partition != nil {
		store8(a+outputRecordPartitionOffset, 1)
		store32(a+outputRecordPartitionOffset+optionS32PayloadOffset, uint32(*o.Partition))
	}
	lowerOptionBytes(a+outputRecordKeyOffset, o.Key)
	lowerOptionBytes(a+outputRecordValueOffset, o.Value)
	lowerHeaders(a+outputRecordHeadersOffset, o.Headers)
}

// lowerOutcomes lays out a list<outcome> and returns its (ptr, len) return
// area.
func lowerOutcomes(outcomes []outcome) uint32 {
	retained.outcomes = outcomes
	p := buffer(uint32(len(outcomes)) * outcomeSize)
	for i := range outcomes {
		o := &outcomes[i]
		e := p + uint32(i)*outcomeSize
		payload := e + outcomePayloadOffset
		if o.err != nil {
			store8(e, 1)
			lowerString(payload+processErrorMessageOffset, o.err.Message)
			if o.err.Retryable {
				store8(payload+processErrorRetryableOffset, 1)
			}
			continue
		}
		records := buffer(uint32(len(o.outputs)) * outputRecordSize)
		for j := range o.outputs {
			lowerOutput(records+uint32(j)*outputRecordSize, &o.outputs[j])
		}
		store32(payload+listPtrOffset, records)
		store32(payload+listLenOffset, uint32(len(o.outputs)))
	}
	ret := addrOf(unsafe.Pointer(&processReturn))
	store32(ret+listPtrOffset, p)
	store32(ret+listLenOffset, uint32(len(outcomes)))
	return ret
}

// ---- exports and imports ----------------------------------------------------

// exportInit is the processor interface's init: config is a
// list<tuple<string, string>>; the result is a result<_, string>.
//
//go:wasmexport weir:processor/processor@0.1.1#init
func exportInit(configPtr, configLen uint32) uint32 {
	enterExport()
	defer leaveExport()
	releaseRetained()
	config := make(Config, configLen)
	for i := uint32(0); i < configLen; i++ {
		e := configPtr + i*configEntrySize
		config[liftString(e+configEntryKeyOffset)] = liftString(e + configEntryValueOffset)
	}
	unpinAll()
	ret := addrOf(unsafe.Pointer(&initReturn))
	initReturn = [len(initReturn)]uint64{}
	if message, failed := runInit(config); failed {
		store8(ret, 1)
		retained.strings = append(retained.strings, message)
		lowerString(ret+initResultPayloadOffset, message)
	}
	return ret
}

// exportInitPost releases what exportInit returned.
//
//go:wasmexport cabi_post_weir:processor/processor@0.1.1#init
func exportInitPost(uint32) {
	releaseRetained()
}

// exportProcess is the processor interface's process: batch is a
// list<input-record>; the result is a list<outcome>.
//
//go:wasmexport weir:processor/processor@0.1.1#process
func exportProcess(batchPtr, batchLen uint32) uint32 {
	enterExport()
	defer leaveExport()
	releaseRetained()
	batch := liftBatch(batchPtr, batchLen)
	unpinAll()
	return lowerOutcomes(processBatch(batch))
}

// exportProcessPost releases what exportProcess returned.
//
//go:wasmexport cabi_post_weir:processor/processor@0.1.1#process
func exportProcessPost(uint32) {
	releaseRetained()
}

//go:wasmimport weir:processor/host@0.1.1 log
//go:noescape
func hostLog(level uint32, message unsafe.Pointer, messageLen uint32)

// writeLog sends a log line to the host. The host traps on invalid UTF-8, so
// such a message is made valid first.
func writeLog(level Level, message string) {
	if !utf8.ValidString(message) {
		message = strings.ToValidUTF8(message, "\uFFFD")
	}
	hostLog(uint32(level), unsafe.Pointer(unsafe.StringData(message)), uint32(len(message)))
}
