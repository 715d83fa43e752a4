//go:build wasip1

// The host's state functions (interface state of weir:processor@0.1.1):
//
//	get    (i32 key_ptr, i32 key_len, i32 ret) -> ()            ret: option<list<u8>>
//	set    (i64 offset, i32 key_ptr, i32 key_len, i32 value_ptr, i32 value_len, i32 ret) -> ()
//	delete (i64 offset, i32 key_ptr, i32 key_len, i32 ret) -> ()  ret: result<_, string>
//
// The host lowers a returned list or string by calling cabi_realloc while the
// import runs; the collector is off for that (see enterExport), and the pins
// those allocations leave are dropped once the result is lifted.

package weir

import "unsafe"

// Layouts of the state functions' return areas (wasm32 canonical ABI).
const (
	stateGetResultSize  = optionListSize // option<list<u8>>
	stateGetResultAlign = optionListAlign
	stateSetResultSize  = initResultSize // result<_, string>
	stateSetResultAlign = initResultAlign
)

// stateReturn is the return area of the state functions: static, so that
// its address stays put while the host writes to it.
var stateReturn [(max(stateGetResultSize, stateSetResultSize) + 7) / 8]uint64

// ClearState does nothing in WebAssembly, where the host owns the state.
func ClearState() {}

//go:wasmimport weir:processor/state@0.1.1 get
//go:noescape
func hostStateGet(key unsafe.Pointer, keyLen uint32, ret unsafe.Pointer)

//go:wasmimport weir:processor/state@0.1.1 set
//go:noescape
func hostStateSet(offset int64, key unsafe.Pointer, keyLen uint32, value unsafe.Pointer, valueLen uint32, ret unsafe.Pointer)

//go:wasmimport weir:processor/state@0.1.1 delete
//go:noescape
func hostStateDelete(offset int64, key unsafe.Pointer, keyLen uint32, ret unsafe.Pointer)

// callHost runs one state import with the collector off, and forgets the
// allocations the host made for its result once lift has lifted it.
func callHost(call func(ret unsafe.Pointer), lift func(ret uint32)) {
	ret := unsafe.Pointer(&stateReturn)
	mark := len(pinned)
	leaveExport()
	call(ret)
	enterExport()
	lift(addrOf(ret))
	clear(pinned[mark:])
	pinned = pinned[:mark]
}

func stateGetFromHost(key []byte) (value []byte, ok bool) {
	callHost(func(ret unsafe.Pointer) {
		hostStateGet(unsafe.Pointer(unsafe.SliceData(key)), uint32(len(key)), ret)
	}, func(ret uint32) {
		if load8(ret) == 0 {
			return
		}
		// The bytes are a Go allocation made by cabi_realloc: the slice keeps
		// it alive once unpinned.
		value, ok = liftBytes(ret+optionListPayloadOffset), true
	})
	return value, ok
}

func sendStateToHost(offset int64, key, value []byte, remove bool) (err error) {
	keyPtr, keyLen := unsafe.Pointer(unsafe.SliceData(key)), uint32(len(key))
	callHost(func(ret unsafe.Pointer) {
		if remove {
			hostStateDelete(offset, keyPtr, keyLen, ret)
		} else {
			hostStateSet(offset, keyPtr, keyLen, unsafe.Pointer(unsafe.SliceData(value)), uint32(len(value)), ret)
		}
	}, func(ret uint32) {
		if load8(ret) != 0 {
			// The message's bytes are a Go allocation made by cabi_realloc:
			// the string keeps it alive once unpinned.
			err = &StateError{Message: liftString(ret + initResultPayloadOffset)}
		}
	})
	return err
}
