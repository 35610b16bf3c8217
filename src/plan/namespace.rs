//! The external ID value sfsync writes to Salesforce: `<namespace>:<key>`.
//!
//! The namespace (12 lowercase hex digits, see `sync::identity`) is derived from the
//! database (its cluster's system identifier and its oid) and the table's name when the
//! mapping is made, and kept with the mapping. Two tables on one object, or the same table
//! in two databases pointed at one org, therefore write different values and never upsert
//! into each other's records; a pull tells its own records from other mappings'.
//! Mappings made before 0.2.0 keep an empty namespace and write the bare key.

/// Length of a namespace.
pub const LEN: usize = 12;

/// Whose record a pulled external ID value says it is.
#[derive(Debug, PartialEq, Eq)]
pub enum Owner<'a> {
    /// This mapping's: the Postgres key it carries.
    Ours(&'a str),
    /// Another mapping's (another table or database): not a key of ours.
    Other,
}

/// The value written for `key` under `namespace`.
pub fn encode(namespace: &str, key: &str) -> String {
    if namespace.is_empty() {
        key.to_string()
    } else {
        format!("{namespace}:{key}")
    }
}

/// Reads a non-empty external ID value for the mapping with `namespace`.
pub fn decode<'a>(namespace: &str, value: &'a str) -> Owner<'a> {
    if namespace.is_empty() {
        // Bare keys; a namespaced value was written by a newer mapping, never by us.
        return if is_namespaced(value) { Owner::Other } else { Owner::Ours(value) };
    }
    match value.split_once(':') {
        Some((ns, key)) if ns == namespace => Owner::Ours(key),
        _ => Owner::Other,
    }
}

/// `<12 lowercase hex>:<anything>`.
pub fn is_namespaced(value: &str) -> bool {
    let b = value.as_bytes();
    b.len() > LEN && b[LEN] == b':' && b[..LEN].iter().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: &str = "0123456789ab";

    #[test]
    fn round_trip() {
        assert_eq!(encode(NS, "42"), "0123456789ab:42");
        assert_eq!(decode(NS, &encode(NS, "42")), Owner::Ours("42"));
        // Keys may hold colons themselves: only the first one separates.
        assert_eq!(decode(NS, &encode(NS, "a:b")), Owner::Ours("a:b"));
        assert_eq!(decode(NS, &encode(NS, "")), Owner::Ours(""));
    }

    #[test]
    fn other_namespaces_and_bare_values_are_not_ours() {
        assert_eq!(decode(NS, "ba9876543210:42"), Owner::Other);
        assert_eq!(decode(NS, "42"), Owner::Other);
        assert_eq!(decode(NS, "0123456789ab"), Owner::Other);
    }

    #[test]
    fn bare_mappings_read_bare_keys_but_not_namespaced_values() {
        assert_eq!(encode("", "42"), "42");
        assert_eq!(decode("", "42"), Owner::Ours("42"));
        assert_eq!(decode("", "a:b"), Owner::Ours("a:b"));
        assert_eq!(decode("", "0123456789ab:42"), Owner::Other);
        assert_eq!(decode("", "0123456789AB:42"), Owner::Ours("0123456789AB:42"));
    }
}
