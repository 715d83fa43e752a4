//! What one plugin instance may take from the host: linear memory summed over
//! all its memories, table elements summed over all its tables, and how many
//! core instances, memories and tables it may create. A component is many
//! core modules; capping each memory alone would let multi-memory or
//! `table.grow` multiply the cap.

use wasmtime::ResourceLimiter;

/// Core instances one component instance may create (a Python or JavaScript
/// component uses a handful).
const MAX_INSTANCES: usize = 64;
/// Linear memories across those instances.
const MAX_MEMORIES: usize = 16;
/// Tables across those instances.
const MAX_TABLES: usize = 64;
/// Table elements across all tables (each is a pointer or so in host memory).
const MAX_TABLE_ELEMENTS: usize = 1_000_000;

/// The limiter of one instance's store. It remembers whether the memory cap
/// was hit, so that a trap it caused is reported as out-of-memory.
pub(super) struct ResourceCap {
    max_memory_bytes: usize,
    memory_bytes: usize,
    table_elements: usize,
    /// Whether a memory growth was refused.
    pub(super) hit: bool,
}

impl ResourceCap {
    /// A cap of `max_memory_bytes` over all of an instance's linear memories.
    pub(super) fn new(max_memory_bytes: usize) -> Self {
        Self {
            max_memory_bytes,
            memory_bytes: 0,
            table_elements: 0,
            hit: false,
        }
    }
}

impl ResourceLimiter for ResourceCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        // A growth past the guest's own declared maximum fails in the guest
        // (memory.grow returns -1); wasmtime checks that itself.
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = (self.memory_bytes - current.min(self.memory_bytes)).saturating_add(desired);
        if total > self.max_memory_bytes {
            self.hit = true;
            // A failed growth traps (rather than returning -1 to the guest).
            return Err(wasmtime::Error::msg(format!(
                "forcing trap when growing memory to {desired} bytes: the instance's memories would use {total} bytes, over its cap of {}",
                self.max_memory_bytes
            )));
        }
        self.memory_bytes = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        // A growth past the guest's own declared maximum fails in the guest
        // (memory.grow returns -1); wasmtime checks that itself.
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total =
            (self.table_elements - current.min(self.table_elements)).saturating_add(desired);
        if total > MAX_TABLE_ELEMENTS {
            return Err(wasmtime::Error::msg(format!(
                "forcing trap when growing a table to {desired} elements: the instance's tables would hold {total}, over the cap of {MAX_TABLE_ELEMENTS}"
            )));
        }
        self.table_elements = total;
        Ok(true)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::{Engine, Instance, Module, Store};

    const PAGE: usize = 64 * 1024;

    /// Instantiate `wat` in a store capped at `cap_pages`; call its `grow`.
    fn grow(wat: &str, cap_pages: usize) -> (Result<i32, wasmtime::Error>, bool) {
        let engine = Engine::default();
        let module = Module::new(&engine, wat::parse_str(wat).unwrap()).unwrap();
        let mut store = Store::new(&engine, ResourceCap::new(cap_pages * PAGE));
        store.limiter(|cap| cap);
        let instance = Instance::new(&mut store, &module, &[]).unwrap();
        let grow = instance
            .get_typed_func::<(), i32>(&mut store, "grow")
            .unwrap();
        let result = grow.call(&mut store, ());
        (result, store.data().hit)
    }

    #[test]
    fn the_memory_cap_covers_the_sum_of_all_memories() {
        // Two memories of 6 pages each fit a 10-page cap one at a time, not together.
        let two = r#"(module
            (memory $a 1) (memory $b 1)
            (func (export "grow") (result i32)
                (drop (memory.grow $a (i32.const 5)))
                (memory.grow $b (i32.const 5))))"#;
        let (result, hit) = grow(two, 10);
        assert!(
            result.is_err(),
            "the second memory grew past the shared cap"
        );
        assert!(hit);
        let (result, hit) = grow(two, 12);
        assert_eq!(result.unwrap(), 1);
        assert!(!hit);
    }

    #[test]
    fn tables_cannot_grow_without_bound() {
        let table = r#"(module
            (table $t 1 funcref)
            (func (export "grow") (result i32)
                (table.grow $t (ref.null func) (i32.const 2000000))))"#;
        let (result, _) = grow(table, 10);
        assert!(result.is_err(), "a table grew to two million elements");
    }

    #[test]
    fn a_module_cannot_have_more_memories_than_allowed() {
        let memories: String = (0..=MAX_MEMORIES).map(|_| "(memory 0)").collect();
        let wat =
            format!(r#"(module {memories} (func (export "grow") (result i32) (i32.const 0)))"#);
        let engine = Engine::default();
        let module = Module::new(&engine, wat::parse_str(&wat).unwrap()).unwrap();
        let mut store = Store::new(&engine, ResourceCap::new(PAGE));
        store.limiter(|cap| cap);
        assert!(Instance::new(&mut store, &module, &[]).is_err());
    }
}
