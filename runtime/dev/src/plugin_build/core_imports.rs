//! One import per name in a core module. The Go linker imports a WASI function
//! once per package that declares it (`runtime` and `syscall` both import
//! `fd_write`), and a component may not import one name twice; so identical
//! function imports are merged into the first and every call, export, table
//! entry and `ref.func` renumbered.

use std::collections::{HashMap, HashSet};

use wasm_encoder::reencode::{utils, Error as ReencodeError, Reencode};
use wasmparser::{Parser, Payload, TypeRef};

use super::{toolchain_failed, BuildError};

/// `module` with duplicate function imports merged; unchanged if it has none.
pub fn merge_duplicates(module: &[u8]) -> Result<Vec<u8>, BuildError> {
    let renumbering = renumbering(module).map_err(|e| failed(e.into()))?;
    if renumbering.removed == 0 {
        return Ok(module.to_vec());
    }
    let mut merged = wasm_encoder::Module::new();
    let mut merger = Merger {
        renumbering,
        seen: HashSet::new(),
    };
    utils::parse_core_module(&mut merger, &mut merged, Parser::new(0), module)
        .map_err(|e| failed(anyhow::anyhow!("{e}")))?;
    Ok(merged.finish())
}

fn failed(e: anyhow::Error) -> BuildError {
    toolchain_failed("merging duplicate imports", e)
}

/// Old function index → new one.
struct Renumbering {
    /// For each old function index: its new one.
    new_index: Vec<u32>,
    /// How many imports were merged away.
    removed: u32,
}

fn renumbering(module: &[u8]) -> Result<Renumbering, wasmparser::BinaryReaderError> {
    let mut new_index = Vec::new();
    let mut first: HashMap<(String, String), u32> = HashMap::new();
    let mut removed = 0;
    for payload in Parser::new(0).parse_all(module) {
        match payload? {
            Payload::ImportSection(section) => {
                for import in section.into_imports() {
                    let import = import?;
                    let (TypeRef::Func(ty) | TypeRef::FuncExact(ty)) = import.ty else {
                        continue;
                    };
                    let old = new_index.len() as u32;
                    let key = (format!("{}\0{ty}", import.module), import.name.to_string());
                    match first.get(&key) {
                        Some(&kept) => {
                            new_index.push(kept);
                            removed += 1;
                        }
                        None => {
                            first.insert(key, old - removed);
                            new_index.push(old - removed);
                        }
                    }
                }
            }
            Payload::FunctionSection(section) => {
                for _ in 0..section.count() {
                    let old = new_index.len() as u32;
                    new_index.push(old - removed);
                }
            }
            _ => {}
        }
    }
    Ok(Renumbering { new_index, removed })
}

/// Re-encodes a module, keeping the first of each function import and
/// renumbering functions.
struct Merger {
    renumbering: Renumbering,
    seen: HashSet<(String, String, u32)>,
}

impl Reencode for Merger {
    type Error = std::convert::Infallible;

    fn function_index(&mut self, func: u32) -> Result<u32, ReencodeError<Self::Error>> {
        Ok(self.renumbering.new_index[func as usize])
    }

    fn parse_import(
        &mut self,
        imports: &mut wasm_encoder::ImportSection,
        import: wasmparser::Import<'_>,
    ) -> Result<(), ReencodeError<Self::Error>> {
        if let TypeRef::Func(ty) | TypeRef::FuncExact(ty) = import.ty {
            let key = (import.module.to_string(), import.name.to_string(), ty);
            if !self.seen.insert(key) {
                return Ok(());
            }
        }
        utils::parse_import(self, imports, import)
    }

    fn parse_import_section(
        &mut self,
        imports: &mut wasm_encoder::ImportSection,
        section: wasmparser::ImportSectionReader<'_>,
    ) -> Result<(), ReencodeError<Self::Error>> {
        for import in section.into_imports() {
            self.parse_import(imports, import?)?;
        }
        Ok(())
    }

    /// Function names would name the old indices: dropped (traps still name
    /// the plugin and the record).
    fn parse_custom_section(
        &mut self,
        module: &mut wasm_encoder::Module,
        section: wasmparser::CustomSectionReader<'_>,
    ) -> Result<(), ReencodeError<Self::Error>> {
        if section.name() == "name" {
            return Ok(());
        }
        utils::parse_custom_section(self, module, section)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// fd_write imported twice (as Go does), called through the second import,
    /// directly and through the table.
    const TWICE: &str = r#"(module
        (import "wasi_snapshot_preview1" "fd_write" (func $a (param i32 i32 i32 i32) (result i32)))
        (import "env" "other" (func $b (result i32)))
        (import "wasi_snapshot_preview1" "fd_write" (func $c (param i32 i32 i32 i32) (result i32)))
        (type $sum (func (result i32)))
        (func $own (result i32) (call $c (i32.const 1) (i32.const 2) (i32.const 3) (i32.const 4)))
        (func (export "run") (result i32)
            (i32.add (call $b) (i32.add (call $own) (call_indirect (type $sum) (i32.const 0)))))
        (table 1 funcref) (elem (i32.const 0) func $own)
    )"#;

    fn imports(module: &[u8]) -> Vec<(String, String)> {
        Parser::new(0)
            .parse_all(module)
            .filter_map(|p| match p.unwrap() {
                Payload::ImportSection(s) => Some(
                    s.into_imports()
                        .map(|i| i.unwrap())
                        .map(|i| (i.module.to_string(), i.name.to_string()))
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// Instantiate `module` with fd_write summing its arguments and other
    /// returning 100, and call `run`.
    fn run(module: &[u8]) -> i32 {
        let engine = wasmtime::Engine::default();
        let module = wasmtime::Module::new(&engine, module).unwrap();
        let mut linker = wasmtime::Linker::new(&engine);
        linker
            .func_wrap(
                "wasi_snapshot_preview1",
                "fd_write",
                |a: i32, b: i32, c: i32, d: i32| a + b + c + d,
            )
            .unwrap();
        linker.func_wrap("env", "other", || 100).unwrap();
        let mut store = wasmtime::Store::new(&engine, ());
        let instance = linker.instantiate(&mut store, &module).unwrap();
        let run = instance
            .get_typed_func::<(), i32>(&mut store, "run")
            .unwrap();
        run.call(&mut store, ()).unwrap()
    }

    #[test]
    fn a_function_imported_twice_is_imported_once_and_calls_still_reach_it() {
        let module = wat::parse_str(TWICE).unwrap();
        let merged = merge_duplicates(&module).unwrap();
        assert_eq!(
            imports(&merged),
            [
                ("wasi_snapshot_preview1".into(), "fd_write".into()),
                ("env".into(), "other".into())
            ]
        );
        assert_eq!(run(&module), 120);
        assert_eq!(
            run(&merged),
            120,
            "direct, indirect and import calls renumbered"
        );
    }

    #[test]
    fn a_module_without_duplicates_is_left_as_it_is() {
        let module = wat::parse_str(r#"(module (import "a" "b" (func)) (func (call 0)))"#).unwrap();
        assert_eq!(merge_duplicates(&module).unwrap(), module);
    }
}
