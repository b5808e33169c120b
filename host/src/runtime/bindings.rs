//! The one `bindgen!` of the host: Rust types and traits for the `processor` world.
//!
//! Imports are async (the input stream awaits the object store directly) and
//! trappable (the host stops a plugin that exceeds its output cap at once).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "kiln:plugin/processor",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "kiln:plugin/types.input": super::streams::InputHandle,
        "kiln:plugin/types.outputs": super::streams::OutputsHandle,
        "kiln:plugin/types.output": super::streams::OutputHandle,
    },
});
