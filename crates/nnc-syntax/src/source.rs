//! Reading a `.nn` file, bounded: shared by the CLI and `net!(file = ...)`.

use std::io::Read;
use std::path::Path;

/// The largest source file nnc reads: 16 MiB (a thousand times the largest example).
/// A larger file, or an endless one such as `/dev/zero`, is refused after reading
/// one byte past the limit.
pub const MAX_SOURCE_BYTES: u64 = 16 << 20;

/// The text of `path`, read up to [`MAX_SOURCE_BYTES`]. The error says why, without
/// the path (the caller names it).
pub fn read_source(path: &Path) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(MAX_SOURCE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_SOURCE_BYTES {
        return Err(format!(
            "it is larger than the limit of {} MiB for a source file",
            MAX_SOURCE_BYTES >> 20
        ));
    }
    String::from_utf8(bytes).map_err(|_| "stream did not contain valid UTF-8".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_read_and_endless_ones_refused() {
        let dir = std::env::temp_dir().join(format!("nnc-source-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("m.nn");
        std::fs::write(&path, "model m { loss 1; }").expect("writable");
        assert_eq!(read_source(&path).as_deref(), Ok("model m { loss 1; }"));
        std::fs::write(&path, [0xff, 0xfe]).expect("writable");
        assert_eq!(
            read_source(&path),
            Err("stream did not contain valid UTF-8".into())
        );
        std::fs::remove_dir_all(&dir).expect("removed");
        if Path::new("/dev/zero").exists() {
            assert_eq!(
                read_source(Path::new("/dev/zero")),
                Err("it is larger than the limit of 16 MiB for a source file".into())
            );
        }
    }
}
