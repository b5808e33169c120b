//! The wit-bindgen glue. Plugin authors never use this module directly: the
//! [`crate::export!`] macro wires their [`crate::Processor`] to it.

wit_bindgen::generate!({
    path: "../wit",
    world: "kiln:plugin/processor",
    pub_export_macro: true,
    export_macro_name: "__export_processor",
    default_bindings_module: "::kiln_plugin_sdk::bindings",
    runtime_path: "::kiln_plugin_sdk::__private::wit_bindgen::rt",
    generate_all,
});
