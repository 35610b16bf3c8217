//! Which Postgres column types can hold which Salesforce field types (docs/type-mapping.md,
//! "What sync_table checks"). `sync_table` refuses an incompatible pair unless the user opts
//! in to the cast for that column; individual values are then still checked before sending
//! (`plan::check`), so an opted-in cast that fails for one value fails only that record.

/// The kind of a Postgres column type, from `format_type` (`numeric(18,2)`, `text[]`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgKind {
    Text,
    Bool,
    Int,
    /// numeric, real, double precision, money.
    Num,
    Date,
    Timestamp,
    Time,
    Json,
    Bytea,
    Uuid,
    /// An array of text (or varchar): a multi-select picklist's values.
    TextArray,
    /// Any other array.
    Array,
    /// Enums, domains, extension types: sent as their text form.
    Other,
}

pub fn pg_kind(pg_type: &str) -> PgKind {
    let t = pg_type.trim();
    if let Some(elem) = t.strip_suffix("[]") {
        return if pg_kind(elem) == PgKind::Text { PgKind::TextArray } else { PgKind::Array };
    }
    let base = t.split('(').next().unwrap_or(t).trim();
    match base {
        "text" | "character varying" | "character" | "varchar" | "char" | "bpchar" | "name" | "citext" => PgKind::Text,
        "boolean" => PgKind::Bool,
        "smallint" | "integer" | "bigint" => PgKind::Int,
        "numeric" | "real" | "double precision" | "money" => PgKind::Num,
        "date" => PgKind::Date,
        "json" | "jsonb" => PgKind::Json,
        "bytea" => PgKind::Bytea,
        "uuid" => PgKind::Uuid,
        _ if base.starts_with("timestamp") => PgKind::Timestamp,
        _ if base.starts_with("time") => PgKind::Time,
        _ => PgKind::Other,
    }
}

/// Salesforce field types whose values are text (`plan::convert` sends them as strings).
pub fn is_text_field(sf_type: &str) -> bool {
    matches!(sf_type, "string" | "textarea" | "url" | "email" | "phone" | "picklist" | "combobox" | "encryptedstring")
}

/// None when a column of `pg_type` can hold field type `sf_type` both ways (values that do
/// not convert are still refused one by one); otherwise why not.
pub fn incompatibility(pg_type: &str, sf_type: &str) -> Option<&'static str> {
    use PgKind::*;
    let k = pg_kind(pg_type);
    // A text column holds anything Salesforce can render; its values are checked one by one.
    if k == Text {
        return None;
    }
    let ok = match sf_type {
        t if is_text_field(t) => matches!(k, Bool | Int | Num | Date | Timestamp | Time | Json | Uuid | Other),
        // A lookup column may hold the parent row's key, whatever its type (plan::relations
        // sends the parent's Salesforce Id).
        "id" | "reference" => matches!(k, Int | Uuid | Other),
        "multipicklist" => k == TextArray,
        "boolean" => k == Bool,
        "int" | "long" | "double" | "currency" | "percent" => matches!(k, Int | Num),
        "date" => matches!(k, Date | Timestamp),
        "datetime" => k == Timestamp,
        "time" => k == Time,
        "base64" => k == Bytea,
        "address" | "location" => k == Json,
        _ => false,
    };
    if ok {
        return None;
    }
    Some(match k {
        Json => "JSON documents are not values of this field type",
        Bytea => "binary data only fits a base64 field",
        Array | TextArray => "arrays only fit a multi-select picklist",
        Bool => "a boolean is not a value of this field type",
        Int | Num => "a number is not a value of this field type",
        Date | Timestamp | Time => "a date or time is not a value of this field type",
        Uuid | Other | Text => "its values are not values of this field type",
    })
}

/// Why a mapping that pulls cannot take this field, if it cannot. A `base64` field's value in
/// query results is the URL of its content, one more call per record and value, and Bulk
/// queries cannot read it at all: such a field is pushed only.
pub fn pull_refusal(column: &str, field: &str, sf_type: &str) -> Option<String> {
    (sf_type == "base64").then(|| {
        format!(
            "column \"{column}\": field {field} (base64) is sent only: Salesforce's queries return the URL of its content, \
             not the content; map it with direction => 'push', or leave the column out of fields"
        )
    })
}

/// The Postgres type `sfsync.mirror` would give the field (the suggested fix).
pub fn suggested_type(sf_type: &str, precision: i64, scale: i64) -> String {
    let t = super::mirror::pg_type(sf_type, precision, scale);
    t.strip_suffix(" NOT NULL DEFAULT false").map(str::to_string).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_format_type() {
        assert_eq!(pg_kind("numeric(18,2)"), PgKind::Num);
        assert_eq!(pg_kind("character varying(18)"), PgKind::Text);
        assert_eq!(pg_kind("timestamp(3) with time zone"), PgKind::Timestamp);
        assert_eq!(pg_kind("timestamp without time zone"), PgKind::Timestamp);
        assert_eq!(pg_kind("time without time zone"), PgKind::Time);
        assert_eq!(pg_kind("text[]"), PgKind::TextArray);
        assert_eq!(pg_kind("integer[]"), PgKind::Array);
        assert_eq!(pg_kind("mood"), PgKind::Other);
    }

    #[test]
    fn the_documented_map_is_accepted() {
        for (pg, sf) in [
            ("boolean", "boolean"),
            ("integer", "int"),
            ("bigint", "long"),
            ("numeric(18, 2)", "currency"),
            ("numeric", "double"),
            ("numeric(5, 2)", "percent"),
            ("date", "date"),
            ("timestamp with time zone", "datetime"),
            ("time without time zone", "time"),
            ("text", "picklist"),
            ("text[]", "multipicklist"),
            ("character varying(18)", "reference"),
            ("character varying(18)", "id"),
            ("text", "string"),
            ("text", "textarea"),
            ("jsonb", "address"),
            ("bytea", "base64"),
            ("text", "anyType"),
            ("bigint", "reference"),
            ("uuid", "reference"),
        ] {
            assert_eq!(incompatibility(pg, sf), None, "{pg} ~ {sf}");
        }
    }

    #[test]
    fn text_takes_anything_and_text_fields_take_scalars() {
        for sf in ["date", "datetime", "boolean", "currency", "base64", "multipicklist"] {
            assert_eq!(incompatibility("text", sf), None, "{sf}");
        }
        for pg in ["integer", "numeric", "date", "timestamp with time zone", "boolean", "uuid", "jsonb"] {
            assert_eq!(incompatibility(pg, "string"), None, "{pg}");
        }
        assert_eq!(incompatibility("timestamp with time zone", "date"), None, "the date part is sent");
    }

    #[test]
    fn incompatible_pairs_are_refused_with_a_reason() {
        for (pg, sf) in [
            ("jsonb", "currency"),
            ("jsonb", "date"),
            ("jsonb", "boolean"),
            ("boolean", "date"),
            ("boolean", "int"),
            ("bytea", "string"),
            ("bytea", "currency"),
            ("timestamp with time zone", "boolean"),
            ("date", "datetime"),
            ("integer", "date"),
            ("integer[]", "multipicklist"),
            ("text[]", "string"),
            ("numeric", "boolean"),
        ] {
            assert!(incompatibility(pg, sf).is_some(), "{pg} ~ {sf} should be refused");
        }
        assert_eq!(incompatibility("jsonb", "currency"), Some("JSON documents are not values of this field type"));
    }

    #[test]
    fn base64_fields_are_not_pulled() {
        assert!(pull_refusal("body", "Body", "base64").unwrap().contains("direction => 'push'"));
        assert_eq!(pull_refusal("name", "Name", "string"), None);
    }

    #[test]
    fn the_suggestion_is_the_mirror_type() {
        assert_eq!(suggested_type("currency", 18, 2), "numeric(18, 2)");
        assert_eq!(suggested_type("boolean", 0, 0), "boolean");
    }
}
