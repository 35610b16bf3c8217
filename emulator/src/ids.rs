//! Salesforce record IDs: 15-char case-sensitive base-62 IDs with a 3-char key prefix, and the
//! 18-char case-insensitive form whose suffix encodes which of the first 15 chars are uppercase.
//!
//! Emulator IDs are `prefix(3) + POD(2) + '0' + base62(seq, 9)`. The digit alphabet is in ASCII
//! order, so string order of IDs equals creation order (like real IDs, mostly).

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const SUFFIX: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
/// The emulator's "instance" part of every ID it mints.
pub const POD: &str = "Kg";

/// The 3-char case-checksum suffix for a 15-char ID.
pub fn suffix(id15: &str) -> String {
    id15.as_bytes()
        .chunks(5)
        .map(|chunk| {
            let bits = chunk.iter().enumerate().filter(|(_, c)| c.is_ascii_uppercase()).fold(0usize, |acc, (i, _)| acc | (1 << i));
            SUFFIX[bits] as char
        })
        .collect()
}

/// 15-char → 18-char.
pub fn to18(id15: &str) -> String {
    format!("{id15}{}", suffix(id15))
}

/// Normalizes a user-supplied 15- or 18-char ID to its canonical 18-char form. 18-char input is
/// case-insensitive: the suffix restores the case, as Salesforce does. None when malformed.
pub fn normalize(input: &str) -> Option<String> {
    if !input.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    match input.len() {
        15 => Some(to18(input)),
        18 => {
            let sfx = input[15..].to_ascii_uppercase();
            let mut fixed = String::with_capacity(15);
            for (chunk_no, chunk) in input.as_bytes()[..15].chunks(5).enumerate() {
                let bits = SUFFIX.iter().position(|&c| c == sfx.as_bytes()[chunk_no])?;
                for (i, &c) in chunk.iter().enumerate() {
                    let upper = bits & (1 << i) != 0;
                    if upper && !c.is_ascii_alphabetic() {
                        return None;
                    }
                    fixed.push(if upper { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() } as char);
                }
            }
            Some(to18(&fixed))
        }
        _ => None,
    }
}

/// Mints the canonical 18-char ID for a sequence number.
pub fn mint(prefix: &str, seq: u64) -> String {
    let mut digits = [b'0'; 9];
    let mut n = seq;
    for d in digits.iter_mut().rev() {
        *d = BASE62[(n % 62) as usize];
        n /= 62;
    }
    let id15 = format!("{prefix}{POD}0{}", std::str::from_utf8(&digits).expect("ascii"));
    to18(&id15)
}

/// The sequence number of an emulator-minted canonical ID with the given prefix, if it is one.
pub fn seq_of(prefix: &str, id18: &str) -> Option<u64> {
    if id18.len() != 18 || !id18.starts_with(prefix) || &id18[3..5] != POD || &id18[5..6] != "0" {
        return None;
    }
    id18[6..15].bytes().try_fold(0u64, |acc, b| {
        let d = BASE62.iter().position(|&c| c == b)? as u64;
        Some(acc * 62 + d)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_matches_real_ids() {
        assert_eq!(to18("001A0000006Vm9r"), "001A0000006Vm9rIAC");
        assert_eq!(to18("003A0000005QB3A"), "003A0000005QB3AIAW");
        assert_eq!(to18("00D000000000062"), "00D000000000062EAA");
        assert_eq!(to18("000000000000000"), "000000000000000AAA");
        assert_eq!(to18("AAAAAAAAAAAAAAA"), "AAAAAAAAAAAAAAA555");
    }

    #[test]
    fn normalize_accepts_15_18_and_case_insensitive_18() {
        assert_eq!(normalize("001A0000006Vm9r").unwrap(), "001A0000006Vm9rIAC");
        assert_eq!(normalize("001A0000006Vm9rIAC").unwrap(), "001A0000006Vm9rIAC");
        assert_eq!(normalize("001a0000006vm9riac").unwrap(), "001A0000006Vm9rIAC");
        assert!(normalize("001A0000006Vm9").is_none());
        assert!(normalize("001A0000006Vm9r!AC").is_none());
        assert!(normalize("xyz").is_none());
    }

    #[test]
    fn mint_roundtrips_and_orders() {
        let a = mint("001", 12345);
        let b = mint("001", 12346);
        assert_eq!(a.len(), 18);
        assert!(a < b);
        assert_eq!(seq_of("001", &a), Some(12345));
        assert_eq!(seq_of("003", &a), None);
        assert_eq!(normalize(&a.to_lowercase()).unwrap(), a);
    }
}
