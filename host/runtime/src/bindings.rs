//! The `bindgen!`s of the host: Rust types and traits for the `processor`
//! world of each contract version the host runs, side by side. A component's
//! version is decided at load, from the interfaces it imports.
//!
//! Imports are async (the input stream awaits the object store directly) and
//! trappable (the host stops a plugin that exceeds its output cap at once).

/// `kiln:plugin@0.1.0` (`wit/kiln-plugin.wit`).
pub mod v1 {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "kiln:plugin/processor",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "kiln:plugin/types.input": crate::streams::InputHandle,
            "kiln:plugin/types.outputs": crate::streams::OutputsHandle,
            "kiln:plugin/types.output": crate::streams::OutputHandle,
        },
    });
}

/// `kiln:plugin@0.2.0` (`wit/0.2.0/kiln-plugin.wit`).
pub mod v2 {
    wasmtime::component::bindgen!({
        path: "../../wit/0.2.0",
        world: "kiln:plugin/processor",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "kiln:plugin/types.input": crate::streams::InputHandle,
            "kiln:plugin/types.outputs": crate::streams::OutputsHandle,
            "kiln:plugin/types.output": crate::streams::OutputHandle,
        },
    });
}

// The records both versions share have the same shape, and component types are
// structural: the host passes 0.1.0's `object-info` to either version.
pub use v1::{ObjectInfo, ProcessError};

/// The contract version a plugin was built against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub enum Contract {
    #[serde(rename = "0.1.0")]
    V1,
    #[serde(rename = "0.2.0")]
    V2,
}

impl Contract {
    pub fn as_str(self) -> &'static str {
        match self {
            Contract::V1 => "0.1.0",
            Contract::V2 => "0.2.0",
        }
    }
}
