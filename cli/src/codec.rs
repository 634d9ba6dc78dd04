//! Keys and values in and out: arguments decoded as `--input` says, rows
//! encoded as `--format` says.

use std::ffi::OsString;
use std::io::Read;

use base64::Engine as _;
use bytes::Bytes;

use crate::args::{Format, Input};
use crate::exit::Failure;

/// An argument's bytes: any bytes on Unix, valid Unicode elsewhere.
fn arg_bytes(what: &str, arg: OsString) -> Result<Vec<u8>, Failure> {
    #[cfg(unix)]
    {
        let _ = what;
        use std::os::unix::ffi::OsStringExt;
        Ok(arg.into_vec())
    }
    #[cfg(not(unix))]
    {
        arg.into_string().map(String::into_bytes).map_err(|a| {
            Failure::Usage(format!("{what} `{}` is not Unicode: use --input hex or base64", a.to_string_lossy()))
        })
    }
}

/// KEY, VALUE or --prefix (`what`) as `input` says it is given.
pub fn decode(input: Input, what: &str, arg: OsString) -> Result<Bytes, Failure> {
    let bytes = arg_bytes(what, arg)?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match input {
        Input::Text => Ok(Bytes::from(bytes)),
        Input::Hex => hex::decode(&bytes)
            .map(Bytes::from)
            .map_err(|e| Failure::Usage(format!("{what} `{}` is not hex: {e}", text(&bytes)))),
        Input::Base64 => base64::engine::general_purpose::STANDARD
            .decode(&bytes)
            .map(Bytes::from)
            .map_err(|e| Failure::Usage(format!("{what} `{}` is not base64: {e}", text(&bytes)))),
    }
}

/// The bytes of `--value-file` (`-`: stdin), exactly.
pub fn read_value_file(path: &std::path::Path) -> Result<Bytes, Failure> {
    let mut buf = Vec::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin().lock().read_to_end(&mut buf).map(|_| ())
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut buf)).map(|_| ())
    };
    read.map_err(|e| Failure::Usage(format!("cannot read --value-file {}: {e}", path.display())))?;
    Ok(Bytes::from(buf))
}

pub fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn encode(format: Format, bytes: &[u8]) -> Vec<u8> {
    match format {
        Format::Text | Format::Raw | Format::Json => bytes.to_vec(),
        Format::Hex => hex::encode(bytes).into_bytes(),
        Format::Base64 => base64(bytes).into_bytes(),
    }
}

/// Puts `bytes` into `obj` as `name` when it is UTF-8, else as `<name>_base64`.
fn insert_bytes(obj: &mut serde_json::Map<String, serde_json::Value>, name: &str, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(s) => obj.insert(name.into(), s.into()),
        Err(_) => obj.insert(format!("{name}_base64"), base64(bytes).into()),
    };
}

fn json_line(key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut obj = serde_json::Map::new();
    insert_bytes(&mut obj, "key", key);
    insert_bytes(&mut obj, "value", value);
    let mut line = serde_json::Value::Object(obj).to_string().into_bytes();
    line.push(b'\n');
    line
}

/// What `get` prints for `value`.
pub fn value(format: Format, key: &[u8], value: &[u8]) -> Vec<u8> {
    match format {
        Format::Raw => value.to_vec(),
        Format::Json => json_line(key, value),
        f => {
            let mut line = encode(f, value);
            line.push(b'\n');
            line
        }
    }
}

/// One line of `scan`.
pub fn row(format: Format, key: &[u8], value: &[u8]) -> Vec<u8> {
    if format == Format::Json {
        return json_line(key, value);
    }
    let mut line = encode(format, key);
    line.push(b'\t');
    line.extend(encode(format, value));
    line.push(b'\n');
    line
}
