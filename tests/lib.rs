//! End-to-end tests of Kiln. Each `*.rs` beside this file is a module of
//! the one test binary `e2e` (see `e2e.rs`); `common/` holds their shared harness.
