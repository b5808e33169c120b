//! Imports `wasi:sockets`: Kiln must refuse to load it, naming the import.

use kiln_plugin_sdk::{Input, ObjectInfo, Outputs, PluginInfo, ProcessError, Processor, StyleError};

struct Phones;

impl Processor for Phones {
    fn info() -> PluginInfo {
        PluginInfo::new("net-import", "0.1.0", "Tries to open a connection")
    }
    fn validate(_: &str) -> Result<(), StyleError> {
        Ok(())
    }
    fn process(_: &str, _: &ObjectInfo, _: &mut Input<'_>, _: &mut Outputs<'_>) -> Result<(), ProcessError> {
        std::net::TcpStream::connect("127.0.0.1:9")?;
        Ok(())
    }
}

kiln_plugin_sdk::export!(Phones);
