//! The Zarr v2 metadata of the references: `.zarray` and `.zattrs` documents, the
//! numcodecs filters and compressor that decode a chunk's frames, and inline coordinate
//! arrays.

use serde_json::{json, Map, Value};

use crate::codec::{Compression, Predictor};
use crate::dtype::DataType;

/// How every frame of an array is decoded by numcodecs: the Zarr dtype (big-endian under
/// the floating-point predictor, whose byte planes run most significant first), the
/// filters (applied in reverse order on decoding) and the compressor.
#[derive(Debug, Clone, PartialEq)]
pub struct Codecs {
    pub dtype: String,
    pub filters: Value,
    pub compressor: Value,
}

/// Why chunks of an encoding cannot be given to numcodecs, and what to do about it, or
/// the codecs that decode them. `whole_blocks` says whether the predictor ran over each
/// block as one sequence (flag bit 1 of a chunk head) rather than row by row.
pub fn codecs(
    dtype: DataType,
    compression: Compression,
    level: i32,
    predictor: Predictor,
    whole_blocks: bool,
) -> std::result::Result<Codecs, String> {
    let compressor = match compression {
        Compression::None => Value::Null,
        Compression::Zstd => json!({"id": "zstd", "level": level}),
        // The chunks' DEFLATE streams carry zlib's header and checksum, which is what
        // numcodecs' Zlib (Python's zlib.decompress) reads.
        Compression::Deflate => json!({"id": "zlib", "level": level}),
        Compression::Lz4 => {
            return Err(
                "its frames are LZ4 blocks without a length prefix, and numcodecs' \
                 LZ4 codec reads only blocks that start with their decoded length"
                    .into(),
            )
        }
    };
    if predictor != Predictor::None && !whole_blocks {
        return Err(
            "its predictor runs over each row of a block (a chunk written before \
             blocks were predicted whole), which no numcodecs filter undoes"
                .into(),
        );
    }
    let little = little_endian_dtype(dtype);
    let (dtype_name, filters) = match predictor {
        Predictor::None => (little, Value::Null),
        Predictor::Horizontal => {
            // Wrapping differences on the sample's width: the integer type itself, or the
            // unsigned integer of a float's width (its bits are differenced).
            let delta = match dtype {
                DataType::Float32 => "<u4".to_string(),
                DataType::Float64 => "<u8".to_string(),
                _ => little.clone(),
            };
            (little, json!([{"id": "delta", "dtype": delta}]))
        }
        Predictor::FloatingPoint => {
            let width = dtype.size();
            let big = little.replacen('<', ">", 1);
            (
                big,
                json!([
                    {"id": "shuffle", "elementsize": width},
                    {"id": "delta", "dtype": "|u1"}
                ]),
            )
        }
    };
    Ok(Codecs {
        dtype: dtype_name,
        filters,
        compressor,
    })
}

/// The NumPy type string of little-endian samples of `dtype`.
fn little_endian_dtype(dtype: DataType) -> String {
    match dtype {
        DataType::Byte => "|u1",
        DataType::UInt16 => "<u2",
        DataType::Int16 => "<i2",
        DataType::UInt32 => "<u4",
        DataType::Int32 => "<i4",
        DataType::Float32 => "<f4",
        DataType::Float64 => "<f8",
    }
    .to_string()
}

/// A fill value as Zarr v2 writes it: a number, or `"NaN"`, `"Infinity"`, `"-Infinity"`;
/// an integer for integer types.
pub fn fill_value(value: f64, dtype: DataType) -> Value {
    if value.is_nan() {
        return json!("NaN");
    }
    if value.is_infinite() {
        return json!(if value > 0.0 { "Infinity" } else { "-Infinity" });
    }
    if dtype.is_float() {
        json!(value)
    } else {
        json!(value as i64)
    }
}

/// The `.zarray` document of an array.
pub fn zarray(
    shape: &[u64],
    chunks: &[u64],
    codecs: &Codecs,
    fill_value: Value,
) -> std::result::Result<String, serde_json::Error> {
    serde_json::to_string(&json!({
        "zarr_format": 2,
        "shape": shape,
        "chunks": chunks,
        "dtype": codecs.dtype,
        "compressor": codecs.compressor,
        "filters": codecs.filters,
        "fill_value": fill_value,
        "order": "C",
    }))
}

/// The `.zattrs` document of an array over `dims`, with `attrs` added.
pub fn zattrs(dims: &[&str], mut attrs: Map<String, Value>) -> String {
    attrs.insert("_ARRAY_DIMENSIONS".into(), json!(dims));
    ascii_json(&Value::Object(attrs))
}

/// `value` as JSON text in ASCII, every other character escaped (`\uXXXX`, in UTF-16):
/// zarr-python reads metadata documents as ASCII, and a CRS's WKT may hold `°`.
pub fn ascii_json(value: &Value) -> String {
    let text = value.to_string();
    let mut out = String::with_capacity(text.len());
    let mut units = [0u16; 2];
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
            continue;
        }
        for u in c.encode_utf16(&mut units) {
            out.push_str(&format!("\\u{u:04x}"));
        }
    }
    out
}

/// An uncompressed one-chunk array of little-endian f64 `values`: its `.zarray` and the
/// chunk, inline as `base64:` text.
pub fn inline_f64(values: &[f64]) -> (String, String) {
    let n = values.len() as u64;
    let plain = Codecs {
        dtype: "<f8".into(),
        filters: Value::Null,
        compressor: Value::Null,
    };
    let meta = zarray(&[n], &[n.max(1)], &plain, Value::Null).expect("plain metadata");
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    (meta, format!("base64:{}", base64(&bytes)))
}

/// Standard base64 (RFC 4648, with padding), for chunks kept inline in the references.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let b = [
            group[0],
            group.get(1).copied().unwrap_or(0),
            group.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= group.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_ascii_json_that_reads_back() {
        let v = json!({"crs_wkt": "84°N, 𝔸"});
        let text = ascii_json(&v);
        assert!(text.is_ascii(), "{text}");
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), v);
    }

    #[test]
    fn base64_matches_rfc_4648_examples() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, coded) in cases {
            assert_eq!(base64(plain.as_bytes()), coded);
        }
    }

    #[test]
    fn the_floating_point_predictor_is_shuffle_and_byte_delta_on_big_endian_samples() {
        let c = codecs(
            DataType::Float32,
            Compression::Zstd,
            1,
            Predictor::FloatingPoint,
            true,
        )
        .unwrap();
        assert_eq!(c.dtype, ">f4");
        assert_eq!(
            c.filters,
            json!([{"id": "shuffle", "elementsize": 4}, {"id": "delta", "dtype": "|u1"}])
        );
        assert_eq!(c.compressor, json!({"id": "zstd", "level": 1}));
    }

    #[test]
    fn lz4_and_row_by_row_prediction_are_refused_with_a_reason() {
        let lz4 = codecs(DataType::Int16, Compression::Lz4, 0, Predictor::None, true);
        assert!(lz4.unwrap_err().contains("length prefix"));
        let rows = codecs(
            DataType::Int16,
            Compression::Zstd,
            1,
            Predictor::Horizontal,
            false,
        );
        assert!(rows.unwrap_err().contains("each row"));
        // Without a predictor, how it would have run does not matter.
        assert!(codecs(DataType::Byte, Compression::None, 0, Predictor::None, false).is_ok());
    }

    #[test]
    fn fill_values_are_written_as_zarr_spells_them() {
        assert_eq!(fill_value(f64::NAN, DataType::Float32), json!("NaN"));
        assert_eq!(
            fill_value(f64::NEG_INFINITY, DataType::Float64),
            json!("-Infinity")
        );
        assert_eq!(fill_value(-32768.0, DataType::Int16), json!(-32768));
        assert_eq!(fill_value(1e20, DataType::Float32), json!(1e20));
    }
}
