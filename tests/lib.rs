//! End-to-end tests of Kiln. Each `*.rs` beside this file is a test target
//! (see Cargo.toml); `common/` holds their shared helpers.
