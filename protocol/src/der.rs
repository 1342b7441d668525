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

/// The DER SEQUENCEs (certificates) laid end to end at the start of `b`,
/// up to the first byte that does not start one (NV padding).
pub fn concatenated_sequences(mut b: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(len) = sequence_len(b) {
        out.push(b[..len].to_vec());
        b = &b[len..];
    }
    out
}

/// Certificates given as a file: PEM (every CERTIFICATE block) or DER (one
/// or more concatenated).
pub fn certificates_from_file(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let certs = if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        let text = std::str::from_utf8(bytes).map_err(|_| "PEM that is not text".to_string())?;
        let mut out = Vec::new();
        for block in text.split("-----BEGIN CERTIFICATE-----").skip(1) {
            let body = block
                .split("-----END CERTIFICATE-----")
                .next()
                .unwrap_or_default();
            let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            use base64::Engine;
            out.push(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|e| format!("PEM certificate: {e}"))?,
            );
        }
        out
    } else {
        concatenated_sequences(bytes)
    };
    if certs.is_empty() {
        return Err("no certificate in it (PEM CERTIFICATE blocks or DER)".into());
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::{concatenated_sequences, element, sequence_len};

    #[test]
    fn concatenated_certificates_and_padding() {
        let two = [0x30, 0x01, 7, 0x30, 0x02, 8, 9, 0xff, 0xff];
        assert_eq!(
            concatenated_sequences(&two),
            vec![vec![0x30, 0x01, 7], vec![0x30, 0x02, 8, 9]]
        );
        assert!(concatenated_sequences(&[0xff; 4]).is_empty());
        assert!(super::certificates_from_file(b"junk").is_err());
    }

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
