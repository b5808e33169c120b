//! Checks a plugin's bytes before and after compiling: is it WebAssembly, is it
//! a component, and does it import only what Kiln provides.

use super::LoadError;

/// Interfaces a plugin may import. Everything else is refused at load time
/// with its name, before any instance exists.
const ALLOWED: &[&str] = &[
    "kiln:plugin/",
    // What Rust std (and other languages' runtimes) need for stdio, clocks,
    // randomness and exit. The environment and arguments are empty.
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:cli/",
    // Linked with no directory in it (see `add_allowed_wasi`): importing it
    // gives no file, and libraries that could read one still link.
    "wasi:filesystem/",
];

/// Interfaces refused with a reason a plugin author will understand.
const FORBIDDEN: &[(&str, &str)] =
    &[("wasi:sockets/", "plugins get no network access"), ("wasi:http/", "plugins get no network access")];

/// The first bytes of every WebAssembly binary, then the version/layer field.
const MAGIC: &[u8; 4] = b"\0asm";
const CORE_MODULE_VERSION: [u8; 4] = [1, 0, 0, 0];

/// Cheap checks on the raw bytes, before spending time on compilation.
pub fn check_bytes(wasm: &[u8], max_size: usize) -> Result<(), LoadError> {
    if wasm.len() > max_size {
        return Err(LoadError::TooLarge { size: wasm.len(), limit: max_size });
    }
    if wasm.len() < 8 || &wasm[..4] != MAGIC {
        return Err(LoadError::NotWasm);
    }
    if wasm[4..8] == CORE_MODULE_VERSION {
        return Err(LoadError::CoreModule);
    }
    Ok(())
}

/// The component's own (top-level) imports of instances and functions, read
/// without compiling it: an upload is refused for its imports at once, not
/// after a compile in the background. (Type imports give no capability.)
pub fn top_level_imports(wasm: &[u8]) -> Result<Vec<String>, LoadError> {
    use wasmparser::{ComponentTypeRef, Payload};
    let bad = |e: wasmparser::BinaryReaderError| LoadError::Invalid(format!("not a readable component: {e}"));
    let mut imports = Vec::new();
    // Nested modules and components come inline, each closed by its own `End`.
    let mut depth = 0usize;
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        match payload.map_err(bad)? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) if depth == 0 => break,
            Payload::End(_) => depth -= 1,
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    let import = import.map_err(bad)?;
                    if !matches!(import.ty, ComponentTypeRef::Type(_)) {
                        imports.push(import.name.name.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    Ok(imports)
}

/// Refuse every import outside [`ALLOWED`], naming each with the reason.
pub fn check_imports<'a>(imports: impl IntoIterator<Item = &'a str>) -> Result<(), LoadError> {
    let refused: Vec<String> = imports
        .into_iter()
        .filter_map(|name| {
            if let Some((_, why)) = FORBIDDEN.iter().find(|(prefix, _)| name.starts_with(prefix)) {
                return Some(format!("`{name}` ({why})"));
            }
            if !ALLOWED.iter().any(|prefix| name.starts_with(prefix)) {
                return Some(format!("`{name}` (Kiln provides only {}*)", ALLOWED.join("*, ")));
            }
            None
        })
        .collect();
    if refused.is_empty() { Ok(()) } else { Err(LoadError::ForbiddenImports(refused.join(", "))) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_non_wasm_and_core_modules() {
        assert!(matches!(check_bytes(b"hello world", 100), Err(LoadError::NotWasm)));
        assert!(matches!(check_bytes(b"\0asm\x01\0\0\0", 100), Err(LoadError::CoreModule)));
        assert!(matches!(check_bytes(&[0; 200], 100), Err(LoadError::TooLarge { size: 200, limit: 100 })));
        assert!(check_bytes(b"\0asm\x0d\0\x01\0", 100).is_ok());
    }

    #[test]
    fn reads_a_components_own_imports_without_compiling_it() {
        let copy = std::fs::read(kiln_test_plugins::ECHO).unwrap();
        let imports = top_level_imports(&copy).unwrap();
        assert!(imports.iter().any(|i| i.starts_with("kiln:plugin/types@0.2.0")), "{imports:?}");
        check_imports(imports.iter().map(String::as_str)).unwrap();
        // Cut short: an error naming what is wrong, not a panic.
        let err = top_level_imports(&copy[..copy.len() / 2]).unwrap_err();
        assert!(err.to_string().contains("not a readable component"), "{err}");
    }

    #[test]
    fn names_the_forbidden_import() {
        let err = check_imports(["wasi:io/streams@0.2.6", "wasi:sockets/tcp@0.2.6"]).unwrap_err();
        assert!(err.to_string().contains("wasi:sockets/tcp@0.2.6"), "{err}");
        assert!(check_imports(["wasi:filesystem/preopens@0.2.6"]).is_ok());
        let err = check_imports(["acme:evil/thing"]).unwrap_err();
        assert!(err.to_string().contains("acme:evil/thing"), "{err}");
        assert!(check_imports(["kiln:plugin/host@0.1.0", "wasi:cli/stderr@0.2.6"]).is_ok());
    }
}
