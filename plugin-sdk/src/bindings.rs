//! The wit-bindgen glue, for contract `kiln:plugin@0.2.0` (`wit/0.2.0`). Plugin authors never use this module directly: the
//! [`crate::export!`] macro wires their [`crate::Processor`] to it.

wit_bindgen::generate!({
    path: "../wit/0.2.0",
    world: "kiln:plugin/processor",
    pub_export_macro: true,
    export_macro_name: "__export_processor",
    default_bindings_module: "::kiln_plugin_sdk::bindings",
    runtime_path: "::kiln_plugin_sdk::__private::wit_bindgen::rt",
    generate_all,
});
