//! The one DER length reader: the header and total length of the element at
//! the start of a buffer. Used to cut EK certificates out of padded NV
//! indices (the agent) and to find a certificate's exact signed bytes (the
//! verifier). Definite lengths of up to four bytes only (a certificate of
//! 4 GiB is not one); indefinite lengths are not DER.

/// (header length, total length) of the DER element at the start of `b`, if
/// it is complete within `b`.
pub fn element(b: &[u8]) -> Option<(usize, usize)> {
    let first = *b.get(1)? as usize;
    let (hdr, len) = if first < 0x80 {
        (2, first)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 || b.len() < 2 + n {
            return None;
        }
        (
            2 + n,
            b[2..2 + n]
                .iter()
                .fold(0usize, |a, x| (a << 8) | *x as usize),
        )
    };
    let total = hdr.checked_add(len)?;
    (total <= b.len()).then_some((hdr, total))
}

/// The total length of the SEQUENCE at the start of `b` (a certificate).
pub fn sequence_len(b: &[u8]) -> Option<usize> {
    if b.first() != Some(&0x30) {
        return None;
    }
    element(b).map(|(_, total)| total)
}

#[cfg(test)]
mod tests {
    use super::{element, sequence_len};

    #[test]
    fn der_lengths() {
        assert_eq!(element(&[0x30, 0x03, 1, 2, 3]), Some((2, 5)));
        assert_eq!(element(&[0x30, 0x03, 1, 2, 3, 9, 9]), Some((2, 5)));
        assert_eq!(element(&[0x30, 0x7f]), None);
        assert_eq!(element(&[0x30, 0x03, 1]), None);
        let mut one = vec![0x30, 0x81, 0x80];
        one.extend([0u8; 0x80]);
        assert_eq!(element(&one), Some((3, 131)));
        one.pop();
        assert_eq!(element(&one), None);
        let mut two = vec![0x30, 0x82, 0x01, 0x00];
        two.extend([0u8; 0x100]);
        assert_eq!(element(&two), Some((4, 260)));
        let mut three = vec![0x30, 0x83, 0x00, 0x01, 0x00];
        three.extend([0u8; 0x100]);
        assert_eq!(element(&three), Some((5, 261)));
        // Indefinite length, more than four length bytes, truncated length bytes, no length.
        assert_eq!(element(&[0x30, 0x80, 0, 0]), None);
        assert_eq!(
            element(&[[0x30, 0x80].as_slice(), &[0u8; 200]].concat()),
            None
        );
        assert_eq!(element(&[0x30, 0x84, 0, 0, 0, 2, 1, 2]), Some((6, 8)));
        assert_eq!(element(&[0x30, 0x85, 0, 0, 0, 0, 1, 0]), None);
        assert_eq!(element(&[0x30, 0x82, 0x01]), None);
        assert_eq!(element(&[0x30]), None);
        // A certificate cut out of a padded NV index.
        assert_eq!(sequence_len(&[0x30, 0x02, 1, 2, 0xff, 0xff]), Some(4));
        assert_eq!(sequence_len(&[0x31, 0x02, 1, 2]), None);
        assert_eq!(sequence_len(&[]), None);
    }
}
