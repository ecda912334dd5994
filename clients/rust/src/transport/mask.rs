//! Masking (RFC 6455 §5.3): every byte a client sends in a frame's payload is XORed with the
//! frame's 4-byte key, repeating. Done eight bytes at a time, since every message the client
//! writes passes through here.

/// XORs `payload` with `key`, from the key's first byte.
pub(crate) fn apply(payload: &mut [u8], key: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = payload.chunks_exact_mut(8);
    for chunk in &mut chunks {
        // `chunks_exact_mut(8)` yields 8-byte chunks only.
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let masked = u64::from_ne_bytes(word) ^ wide;
        chunk.copy_from_slice(&masked.to_ne_bytes());
    }
    // The tail starts at a multiple of 8, so at the key's first byte again.
    for (byte, key_byte) in chunks.into_remainder().iter_mut().zip(key.iter().cycle()) {
        *byte ^= key_byte;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn byte_by_byte(payload: &[u8], key: [u8; 4]) -> Vec<u8> {
        let masked = payload.iter().enumerate();
        masked.map(|(i, byte)| byte ^ key[i % 4]).collect()
    }

    #[test]
    fn matches_the_definition_at_every_length() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let payload: Vec<u8> = (0..=255).collect();
        for len in 0..payload.len() {
            let mut masked = payload[..len].to_vec();
            apply(&mut masked, key);
            assert_eq!(masked, byte_by_byte(&payload[..len], key), "length {len}");
            apply(&mut masked, key);
            assert_eq!(
                masked,
                &payload[..len],
                "masking twice restores, length {len}"
            );
        }
    }

    #[test]
    fn masks_the_example_of_the_rfc() {
        // RFC 6455 §5.7: "Hello" masked with 37 fa 21 3d.
        let mut hello = *b"Hello";
        apply(&mut hello, [0x37, 0xfa, 0x21, 0x3d]);
        assert_eq!(hello, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    }
}
