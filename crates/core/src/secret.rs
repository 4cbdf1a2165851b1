//! Unguessable tokens: API keys, session cookies, form tokens, signing secrets. They come
//! from the operating system's CSPRNG; a fast PRNG (fastrand) is predictable from its
//! outputs and is only for jitter and test data.

const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// `n` bytes from the operating system's random source.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    // Failing to read the OS random source means the machine cannot make secrets at all;
    // carrying on with a weaker token would be worse than stopping.
    getrandom::fill(&mut bytes).expect("the operating system's random source is readable");
    bytes
}

/// `len` letters and digits, each uniformly chosen (bytes of 248 and above are dropped so
/// that no character is likelier than another): 62^len possibilities.
pub fn random_token(len: usize) -> String {
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for b in random_bytes(len) {
            if out.len() == len {
                break;
            }
            if usize::from(b) < 248 {
                out.push(char::from(ALPHABET[usize::from(b) % 62]));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_the_asked_length_and_alphabet_and_differ() {
        let a = random_token(40);
        let b = random_token(40);
        assert_eq!(a.len(), 40);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
        assert_eq!(random_bytes(24).len(), 24);
    }
}
