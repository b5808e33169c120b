//! The first-party plugins compiled into the binary by `build.rs`.

include!(concat!(env!("OUT_DIR"), "/bundled.rs"));

/// The component bytes of the bundled plugin `name`.
pub fn get(name: &str) -> Option<&'static [u8]> {
    BUNDLED.iter().find(|(n, _)| *n == name).map(|(_, bytes)| *bytes)
}

/// Names of all bundled plugins.
pub fn names() -> impl Iterator<Item = &'static str> {
    BUNDLED.iter().map(|(n, _)| *n)
}

/// Split a style string `NAME/params` into the plugin name and its parameters.
pub fn split_style(style: &str) -> (&str, &str) {
    style.split_once('/').unwrap_or((style, ""))
}

#[cfg(test)]
mod tests {
    #[test]
    fn splits_style_strings() {
        assert_eq!(super::split_style("image/resize,w_200/format,webp"), ("image", "resize,w_200/format,webp"));
        assert_eq!(super::split_style("copy"), ("copy", ""));
    }

    #[test]
    fn copy_is_bundled() {
        assert!(super::get("copy").is_some_and(|b| b.starts_with(b"\0asm")));
    }
}
