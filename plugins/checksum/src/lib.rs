//! `checksum`: a digest of the whole object, streamed, returned as the task's
//! result (`{"algorithm":"sha256","hex":"…","size":N}`); with `o_1` also
//! written as a small JSON output (extension `json`), as before contract 0.2.0.
//!
//! Styles: `checksum` (sha256), `checksum/sha256`, `checksum/sha1`,
//! `checksum/md5`, `checksum/crc32c`, each with `o_1` to write the output too
//! (`checksum/md5,o_1`). Memory does not grow with the object.

use std::io::{Read, Write};

use kiln_plugin_sdk::serde_json::json;
use kiln_plugin_sdk::{
    ActionInfo, Input, Json, ObjectInfo, Outputs, ParamInfo, PluginInfo, ProcessError, Processor, Style, StyleError,
};
use sha1::Digest;

pub struct Checksum;

const ALGORITHMS: &[&str] = &["sha256", "sha1", "md5", "crc32c"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algorithm {
    Sha256,
    Sha1,
    Md5,
    Crc32c,
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha1 => "sha1",
            Algorithm::Md5 => "md5",
            Algorithm::Crc32c => "crc32c",
        }
    }
}

/// What a style asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Plan {
    algorithm: Algorithm,
    /// `o_1`: also write the JSON as an output object (the only answer before 0.2.0).
    write: bool,
}

/// The parameters: at most one action, naming the algorithm, with at most `o_0`/`o_1`.
fn parse(params: &str) -> Result<Plan, StyleError> {
    let style = Style::parse(params)?;
    let mut algorithm = Algorithm::Sha256;
    let mut write = false;
    if let [first, second, ..] = style.actions.as_slice() {
        return Err(StyleError::UnknownAction {
            action: second.name.clone(),
            expected: format!("nothing after `{}` (checksum takes one action)", first.name),
        });
    }
    if let Some(action) = style.actions.first() {
        algorithm = match action.name.as_str() {
            "sha256" => Algorithm::Sha256,
            "sha1" => Algorithm::Sha1,
            "md5" => Algorithm::Md5,
            "crc32c" => Algorithm::Crc32c,
            other => return Err(kiln_plugin_sdk::style::unknown_action(other, ALGORITHMS)),
        };
        action.expect_keys(&["o"], false)?;
        write = action.get_in::<u8>("o", 0..=1)? == Some(1);
    }
    Ok(Plan { algorithm, write })
}

enum Hasher {
    Sha256(sha2::Sha256),
    Sha1(sha1::Sha1),
    Md5(md5::Md5),
    Crc32c(u32),
}

impl Hasher {
    fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            Algorithm::Md5 => Hasher::Md5(md5::Md5::new()),
            Algorithm::Crc32c => Hasher::Crc32c(0),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Md5(h) => h.update(data),
            Hasher::Crc32c(crc) => *crc = crc32c::crc32c_append(*crc, data),
        }
    }

    /// The digest in lower-case hex (crc32c: the 32-bit value, big-endian, 8 digits).
    fn hex(self) -> String {
        match self {
            Hasher::Sha256(h) => to_hex(&h.finalize()),
            Hasher::Sha1(h) => to_hex(&h.finalize()),
            Hasher::Md5(h) => to_hex(&h.finalize()),
            Hasher::Crc32c(crc) => format!("{crc:08x}"),
        }
    }
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

impl Processor for Checksum {
    fn info() -> PluginInfo {
        let write = || {
            ParamInfo::int("o", "1: also write the JSON as an output object (extension `json`)").range(0..=1).default(0)
        };
        let action = |name: &str, digest: &str| {
            ActionInfo::new(name, &format!("{digest} of the object, as the task's result")).param(write())
        };
        PluginInfo::new("checksum", env!("CARGO_PKG_VERSION"), "sha256, sha1, md5 or crc32c of the object, as JSON")
            .writes(&["json"])
            .actions(vec![
                action("sha256", "SHA-256 (the default)"),
                action("sha1", "SHA-1"),
                action("md5", "MD5"),
                action("crc32c", "CRC-32C (Castagnoli), 8 hex digits"),
            ])
    }

    fn validate(params: &str) -> Result<(), StyleError> {
        parse(params).map(|_| ())
    }

    fn extension(params: &str) -> Option<String> {
        parse(params).is_ok_and(|p| p.write).then(|| "json".into())
    }

    fn process_with_result(
        params: &str,
        _object: &ObjectInfo,
        input: &mut Input<'_>,
        outputs: &mut Outputs<'_>,
    ) -> Result<Option<Json>, ProcessError> {
        let Plan { algorithm, write } = parse(params)?;
        let mut hasher = Hasher::new(algorithm);
        let mut size: u64 = 0;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match input.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ProcessError::failed(format!("reading the object: {e}"))),
            };
            hasher.update(&buf[..n]);
            size += n as u64;
        }
        let result = json!({ "algorithm": algorithm.name(), "hex": hasher.hex(), "size": size });
        if write {
            // The output as before 0.2.0, byte for byte: fields in this order, and a newline.
            let text = format!(
                "{{\"algorithm\":{},\"hex\":{},\"size\":{}}}\n",
                result["algorithm"], result["hex"], result["size"]
            );
            outputs.open(Some("json"))?.write_all(text.as_bytes())?;
        }
        Ok(Some(result))
    }
}

kiln_plugin_sdk::export!(Checksum);

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_plugin_sdk::testing::{run, run_full};

    /// The task's result, as JSON text; no output is written by default.
    fn json(params: &str, input: &[u8]) -> String {
        let ran = run_full::<Checksum>(params, input).unwrap();
        assert!(ran.outputs.is_empty(), "{params}: an output without o_1");
        assert_eq!(ran.extension, None);
        ran.result.expect("a result").to_string()
    }

    #[test]
    fn known_digests_of_abc() {
        assert_eq!(
            json("sha256", b"abc"),
            "{\"algorithm\":\"sha256\",\"hex\":\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\",\"size\":3}"
        );
        assert!(json("sha1", b"abc").contains("\"hex\":\"a9993e364706816aba3e25717850c26c9cd0d89d\""));
        assert!(json("md5", b"abc").contains("\"hex\":\"900150983cd24fb0d6963f7d28e17f72\""));
        // CRC-32C check value (RFC 3720 / iSCSI): "123456789" -> e3069283.
        assert_eq!(json("crc32c", b"123456789"), "{\"algorithm\":\"crc32c\",\"hex\":\"e3069283\",\"size\":9}");
    }

    #[test]
    fn o_1_also_writes_the_object_as_before() {
        for (params, input, want) in [
            (
                "sha256,o_1",
                &b"abc"[..],
                "{\"algorithm\":\"sha256\",\"hex\":\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\",\"size\":3}\n",
            ),
            ("crc32c,o_1", &b"123456789"[..], "{\"algorithm\":\"crc32c\",\"hex\":\"e3069283\",\"size\":9}\n"),
        ] {
            let ran = run_full::<Checksum>(params, input).unwrap();
            assert_eq!(ran.outputs.len(), 1, "{params}");
            assert_eq!(ran.outputs[0].extension.as_deref(), Some("json"));
            assert_eq!(String::from_utf8(ran.outputs[0].bytes.clone()).unwrap(), want);
            // The result is the same JSON.
            let object: Json = kiln_plugin_sdk::serde_json::from_slice(&ran.outputs[0].bytes).unwrap();
            assert_eq!(ran.result, Some(object));
            assert_eq!(ran.extension.as_deref(), Some("json"));
        }
        assert!(run::<Checksum>("md5,o_0", b"abc").unwrap().is_empty());
        assert!(Checksum::validate("md5,o_2").unwrap_err().to_string().contains("between 0 and 1"));
    }

    #[test]
    fn default_is_sha256_and_empty_input_works() {
        assert_eq!(
            json("", b""),
            "{\"algorithm\":\"sha256\",\"hex\":\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\",\"size\":0}"
        );
        assert!(json("md5", b"").contains("d41d8cd98f00b204e9800998ecf8427e"));
        assert!(json("crc32c", b"").contains("\"hex\":\"00000000\""));
    }

    #[test]
    fn streams_large_input_in_chunks() {
        // 1 MiB + 7 bytes of a pattern read through many reads: same digest as one-shot.
        let data: Vec<u8> = (0..(1 << 20) + 7).map(|i| (i * 31 % 251) as u8).collect();
        let expect = to_hex(&sha2::Sha256::digest(&data));
        let got = json("sha256", &data);
        assert!(got.contains(&expect), "{got}");
        assert!(got.contains(&format!("\"size\":{}", data.len())));
        let crc = crc32c::crc32c(&data);
        assert!(json("crc32c", &data).contains(&format!("{crc:08x}")));
    }

    #[test]
    fn bad_params_are_refused() {
        let e = Checksum::validate("sha512").unwrap_err().to_string();
        assert!(e.contains("sha512") && e.contains("sha256, sha1, md5, crc32c"), "{e}");
        assert!(Checksum::validate("sha256,x_1").unwrap_err().to_string().contains("`x`"));
        assert!(Checksum::validate("md5,upper").is_err());
        assert!(Checksum::validate("md5/sha1").unwrap_err().to_string().contains("one action"));
        assert!(matches!(run::<Checksum>("nope", b"abc"), Err(ProcessError::InvalidParams(_))));
    }

    #[test]
    fn info_describes_the_actions() {
        let actions: Json = kiln_plugin_sdk::serde_json::from_str(&Checksum::info().actions_json()).unwrap();
        let names: Vec<&str> = actions.as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
        assert_eq!(names, ALGORITHMS);
        assert_eq!(actions[0]["params"][0]["name"], "o");
    }
}
