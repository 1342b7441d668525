//! Reading input files with a size cap: a hostile or mistaken input (a disk
//! image, a 512 MB CBOR array) is refused after reading at most one byte
//! more than the cap, never loaded whole.

use std::io::Read;
use std::path::Path;

/// The first `max + 1` bytes of `path` at most: a result longer than `max`
/// means the file is too big (the decoders refuse it by length).
pub fn read_capped(path: &Path, max: usize) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    // The size, where the file system knows it, only sizes the buffer.
    let hint = file.metadata().map(|m| m.len()).unwrap_or(0);
    let cap = (max as u64).saturating_add(1);
    let mut out = Vec::with_capacity(hint.min(cap) as usize);
    file.take(cap).read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::read_capped;

    #[test]
    fn reads_at_most_one_byte_past_the_cap() {
        let dir = std::env::temp_dir().join(format!("byok-capped-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f");
        std::fs::write(&p, vec![7u8; 100]).unwrap();
        assert_eq!(read_capped(&p, 1000).unwrap().len(), 100);
        assert_eq!(read_capped(&p, 100).unwrap().len(), 100);
        assert_eq!(read_capped(&p, 10).unwrap().len(), 11);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
