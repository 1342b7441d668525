//! Strict big-endian reader and writer for TPM wire structures.
//!
//! Hand-written rather than taken from `tpm2-protocol`: we need a small subset
//! (TPMT_PUBLIC, TPMS_ATTEST, TPMT_SIGNATURE, TPMT_SENSITIVE) in both directions,
//! with error values that name the structure and field for the operator, and we
//! keep the raw bytes of each parsed structure for hashing (names are computed over
//! the bytes the TPM produced, never over a re-encoding).

use crate::error::WireError;

/// A cursor over one TPM structure; every read is bounds-checked and
/// [`Reader::finish`] refuses trailing bytes.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    structure: &'static str,
}

impl<'a> Reader<'a> {
    pub fn new(structure: &'static str, buf: &'a [u8]) -> Self {
        Reader {
            buf,
            pos: 0,
            structure,
        }
    }

    pub fn bytes(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        match end {
            Some(end) => {
                let out = &self.buf[self.pos..end];
                self.pos = end;
                Ok(out)
            }
            None => Err(WireError::Truncated {
                structure: self.structure,
                field,
                offset: self.pos,
            }),
        }
    }

    pub fn u8(&mut self, field: &'static str) -> Result<u8, WireError> {
        Ok(self.bytes(1, field)?[0])
    }

    pub fn u16(&mut self, field: &'static str) -> Result<u16, WireError> {
        let b = self.bytes(2, field)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub fn u32(&mut self, field: &'static str) -> Result<u32, WireError> {
        let b = self.bytes(4, field)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self, field: &'static str) -> Result<u64, WireError> {
        let b = self.bytes(8, field)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// A TPM2B: a 16-bit size followed by that many bytes, with an upper bound.
    pub fn tpm2b(&mut self, field: &'static str, max: usize) -> Result<&'a [u8], WireError> {
        let at = self.pos;
        let size = self.u16(field)? as usize;
        if size > max {
            return Err(WireError::TooLarge {
                structure: self.structure,
                field,
                offset: at,
                size,
                max,
            });
        }
        self.bytes(size, field)
    }

    /// Refuse any byte after the structure.
    pub fn finish(self) -> Result<(), WireError> {
        if self.pos != self.buf.len() {
            return Err(WireError::TrailingBytes {
                structure: self.structure,
                count: self.buf.len() - self.pos,
            });
        }
        Ok(())
    }

    pub fn bad(&self, field: &'static str, value: u64) -> WireError {
        WireError::BadValue {
            structure: self.structure,
            field,
            value,
        }
    }
}

/// Parse the content of a TPM2B wrapper that must span the whole input
/// (e.g. a TPM2B_PUBLIC as tpm2-tools writes it), returning the inner bytes.
pub fn unwrap_tpm2b<'a>(structure: &'static str, buf: &'a [u8]) -> Result<&'a [u8], WireError> {
    let mut r = Reader::new(structure, buf);
    let inner = r.tpm2b("size", u16::MAX as usize)?;
    r.finish()?;
    if inner.is_empty() {
        return Err(WireError::Empty { structure });
    }
    Ok(inner)
}

/// Big-endian writer for the structures we build (public areas, sensitive areas, blobs).
#[derive(Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Writer::default()
    }
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn raw(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }
    /// Append a TPM2B. Callers only pass buffers far below 64 KiB (keys,
    /// digests, blobs of a few hundred bytes).
    pub fn tpm2b(&mut self, b: &[u8]) -> &mut Self {
        debug_assert!(b.len() <= u16::MAX as usize);
        self.u16(b.len() as u16);
        self.raw(b)
    }
    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }
    pub fn into_vec(self) -> Vec<u8> {
        self.buf
    }
}

/// Wrap bytes in a TPM2B size prefix.
pub fn tpm2b(b: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.tpm2b(b);
    w.into_vec()
}
