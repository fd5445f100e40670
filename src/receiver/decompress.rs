//! Request-body decompression (`gzip`, `zstd`, identity) bounded by the
//! decompressed-size limit, so a compression bomb is refused without being
//! inflated.

use bytes::Bytes;

use crate::pipeline::ExportError;

/// Decompresses `body` (`gzip`, `zstd`, or `identity`/none), refusing output
/// larger than `limit` bytes without ever holding more than that.
pub fn decompress(encoding: Option<&str>, body: Bytes, limit: usize) -> Result<Bytes, ExportError> {
    use std::io::Read;
    let mut out = Vec::new();
    let read = |r: &mut dyn Read, out: &mut Vec<u8>| -> Result<(), ExportError> {
        let mut limited = r.take(limit as u64 + 1);
        limited
            .read_to_end(out)
            .map_err(|e| ExportError::Malformed(format!("cannot decompress the body: {e}")))?;
        if out.len() > limit {
            return Err(ExportError::TooLarge {
                size: out.len(),
                limit,
            });
        }
        Ok(())
    };
    match encoding.map(str::trim) {
        None | Some("") | Some("identity") => {
            if body.len() > limit {
                return Err(ExportError::TooLarge {
                    size: body.len(),
                    limit,
                });
            }
            return Ok(body);
        }
        Some(e) if e.eq_ignore_ascii_case("gzip") => {
            read(&mut flate2::read::MultiGzDecoder::new(&body[..]), &mut out)?
        }
        Some(e) if e.eq_ignore_ascii_case("zstd") => {
            let mut d = zstd::stream::read::Decoder::new(&body[..])
                .map_err(|e| ExportError::Malformed(format!("cannot decompress the body: {e}")))?;
            read(&mut d, &mut out)?
        }
        Some(other) => {
            return Err(ExportError::UnsupportedMediaType(format!(
                "unsupported Content-Encoding {other:?}; use gzip, zstd or none"
            )))
        }
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn gzip_bomb_is_refused_without_inflating_it_all() {
        let zeros = vec![0u8; 8 * 1024 * 1024];
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&zeros).expect("compress");
        let small = enc.finish().expect("compress");
        assert!(small.len() < 64 * 1024);
        let err = decompress(Some("gzip"), Bytes::from(small), 1024 * 1024).expect_err("too large");
        assert!(
            matches!(err, ExportError::TooLarge { limit: 1048576, .. }),
            "{err}"
        );
    }

    #[test]
    fn zstd_round_trips_and_bombs_are_refused() {
        let data = vec![7u8; 4096];
        let packed = zstd::encode_all(&data[..], 3).expect("compress");
        assert_eq!(
            decompress(Some("zstd"), Bytes::from(packed.clone()), 4096).expect("fits"),
            Bytes::from(data)
        );
        assert!(matches!(
            decompress(Some("zstd"), Bytes::from(packed), 4095),
            Err(ExportError::TooLarge { .. })
        ));
    }

    #[test]
    fn corrupt_gzip_is_malformed() {
        let err = decompress(Some("gzip"), Bytes::from_static(b"not gzip at all"), 1024)
            .expect_err("corrupt");
        assert!(matches!(err, ExportError::Malformed(_)));
    }

    #[test]
    fn unknown_encoding_is_unsupported() {
        assert!(matches!(
            decompress(Some("br"), Bytes::new(), 10),
            Err(ExportError::UnsupportedMediaType(_))
        ));
    }
}
