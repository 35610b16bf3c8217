//! The backfill's columnar load: SQL that applies a batch of Bulk CSV rows passed as one
//! `text[]` per column and converted by Postgres's own input functions, the way COPY does,
//! instead of going through jsonb.
//!
//! Parameters: `$1` the Salesforce Ids, `$2..` one array per mapped column (in mapping
//! order), then (for the update) the keys, as text, of rows with a local change pending:
//! the statements run as the table's owner, who cannot read sfsync's outbox.

use super::fields::ColumnMap;

/// Where a lookup column's Salesforce Ids are turned into the parent rows' keys.
#[derive(Debug, Clone, PartialEq)]
pub struct ParentKey {
    /// The parent table, schema-qualified and quoted.
    pub table: String,
    /// Its key column, quoted.
    pub pk: String,
}

/// A lookup column's values (`$1`, Salesforce Ids) as the parent rows' keys, in text and in
/// the same order: the worker runs it before the load, which runs as the child table's owner
/// and so may not read the parent table. Same rule as the JSON path: a parent we don't have
/// leaves the column NULL.
pub fn parent_keys(p: &ParentKey) -> String {
    format!(
        "SELECT array_agg((SELECT x.{pk}::text FROM {tbl} x WHERE x.sfid = u.v) ORDER BY u.n) FROM unnest($1::text[]) WITH ORDINALITY AS u(v, n)",
        pk = p.pk,
        tbl = p.table
    )
}

/// The SQL expression that turns the CSV text `src` into the column's value (a lookup's
/// text is already the parent's key, see [`parent_keys`]).
pub fn value_expr(col: &ColumnMap, src: &str) -> String {
    let ty = &col.pg_type;
    if col.sf_type == "multipicklist" && ty.ends_with("[]") {
        return format!("CAST(array_remove(string_to_array({src}, ';'), '') AS {ty})");
    }
    match ty.as_str() {
        "text" => src.to_string(),
        // A text value into a json column is a JSON string, as in the JSON path.
        "json" | "jsonb" => format!("to_jsonb({src})::{ty}"),
        _ => format!("CAST({src} AS {ty})"),
    }
}

/// The batch as a relation `p(sfid, v1, .., vn)`. The arrays are unnested side by side in
/// a select list (one ProjectSet node) rather than by `FROM unnest(a, b, ..)`, which would
/// first copy every row into a tuplestore.
fn source(n: usize) -> String {
    let mut cols = vec!["unnest($1::text[]) AS sfid".to_string()];
    cols.extend((1..=n).map(|i| format!("unnest(${}::text[]) AS v{i}", i + 1)));
    format!("(SELECT {}) AS p", cols.join(", "))
}

/// How many of the batch's records are already in the table. One index probe per record
/// (a correlated subquery is never turned into a join over the whole table, whatever the
/// statistics of a table still being loaded say).
pub fn count_present(table: &str) -> String {
    format!("SELECT count(*) FROM unnest($1::text[]) AS p(sfid) WHERE (SELECT true FROM {table} x WHERE x.sfid = p.sfid)")
}

/// The statements for one mapping; built once per batch (cheap) from the mapping.
#[derive(Debug, Clone)]
pub struct LoadSql {
    /// Rows whose record we already have: new values, unless equal or a local change waits.
    pub update: Option<String>,
    /// Records we don't have yet; `insert_checked` also skips those that appeared meanwhile.
    pub insert: String,
    pub insert_checked: String,
}

/// `table`, `pk` and `cols` quoted; `exprs` from [`value_expr`] over `p.v1..`, in column order.
pub fn statements(table: &str, pk: &str, cols: &[String], exprs: &[String]) -> LoadSql {
    let n = cols.len();
    let src = source(n);
    let pending_param = n + 2;
    let update = (n > 0).then(|| {
        let tcols: Vec<String> = cols.iter().map(|c| format!("t.{c}")).collect();
        format!(
            "UPDATE {table} t SET ({cols}) = ROW({vals}) FROM {src}
             WHERE t.sfid = p.sfid AND ROW({tcols}) IS DISTINCT FROM ROW({vals}) AND t.{pk}::text <> ALL(${pending_param})",
            cols = cols.join(", "),
            vals = exprs.join(", "),
            tcols = tcols.join(", "),
        )
    });
    let mut list = cols.to_vec();
    list.push("sfid".into());
    let mut vals = exprs.to_vec();
    vals.push("p.sfid".into());
    let insert = format!("INSERT INTO {table} ({}) SELECT {} FROM {src}", list.join(", "), vals.join(", "));
    let insert_checked = format!("{insert} WHERE NOT EXISTS (SELECT 1 FROM {table} x WHERE x.sfid = p.sfid)");
    LoadSql { update, insert, insert_checked }
}

/// How a Bulk CSV value becomes a column value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    Text,
    /// `+0000` offsets get a colon (`+00:00`) for every Postgres version.
    Datetime,
    /// `a;b` into a `text[]` column.
    Multi,
    /// A text value into a json/jsonb column is a JSON string.
    JsonString,
}

pub fn cell_kind(col: &ColumnMap) -> Cell {
    if col.sf_type == "multipicklist" && col.pg_type.ends_with("[]") {
        Cell::Multi
    } else if matches!(col.pg_type.as_str(), "json" | "jsonb") {
        Cell::JsonString
    } else if col.sf_type == "datetime" {
        Cell::Datetime
    } else {
        Cell::Text
    }
}

/// A Bulk CSV value as it goes into a text array (converted there by [`value_expr`]):
/// empty is NULL (Bulk API 2.0 writes nothing for a null).
pub fn cell(kind: Cell, raw: &str) -> Option<std::borrow::Cow<'_, str>> {
    if raw.is_empty() {
        return None;
    }
    if kind == Cell::Datetime && super::convert::has_bare_offset(raw) {
        return Some(super::convert::colon_offset(raw).into());
    }
    Some(raw.into())
}

/// Appends one row in COPY text format: the mapped columns' values, then the Id.
pub fn copy_row<'a>(out: &mut Vec<u8>, values: impl Iterator<Item = (Cell, &'a str)>, id: &str) {
    for (kind, raw) in values {
        match (kind, cell(kind, raw)) {
            (_, None) => out.extend_from_slice(b"\\N"),
            (Cell::Multi, Some(v)) => {
                let items: Vec<String> = v
                    .split(';')
                    .filter(|p| !p.is_empty())
                    .map(|p| format!("\"{}\"", p.replace('\\', "\\\\").replace('"', "\\\"")))
                    .collect();
                copy_escape(out, &format!("{{{}}}", items.join(",")));
            }
            (Cell::JsonString, Some(v)) => copy_escape(out, &serde_json::Value::String(v.into_owned()).to_string()),
            (_, Some(v)) => copy_escape(out, &v),
        }
        out.push(b'\t');
    }
    copy_escape(out, id);
    out.push(b'\n');
}

/// `s` escaped for COPY's text format: the runs between the bytes to escape go in whole.
fn copy_escape(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut from = 0;
    for (i, b) in bytes.iter().enumerate() {
        let escaped: &[u8] = match b {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            _ => continue,
        };
        out.extend_from_slice(&bytes[from..i]);
        out.extend_from_slice(escaped);
        from = i + 1;
    }
    out.extend_from_slice(&bytes[from..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::fields::test_column;

    fn col(name: &str, sf: &str, pg: &str) -> ColumnMap {
        ColumnMap { column: name.into(), ..test_column(sf, pg) }
    }

    #[test]
    fn values_are_cast_by_postgres_input_functions() {
        assert_eq!(value_expr(&col("n", "double", "numeric(18,2)"), "p.v1"), "CAST(p.v1 AS numeric(18,2))");
        assert_eq!(value_expr(&col("n", "string", "text"), "p.v1"), "p.v1");
        assert_eq!(value_expr(&col("n", "boolean", "boolean"), "p.v2"), "CAST(p.v2 AS boolean)");
        assert_eq!(
            value_expr(&col("n", "multipicklist", "text[]"), "p.v1"),
            "CAST(array_remove(string_to_array(p.v1, ';'), '') AS text[])"
        );
        assert_eq!(value_expr(&col("n", "string", "jsonb"), "p.v1"), "to_jsonb(p.v1)::jsonb");
    }

    #[test]
    fn lookups_become_the_parents_key() {
        let p = ParentKey { table: "public.accounts".into(), pk: "id".into() };
        assert_eq!(
            parent_keys(&p),
            "SELECT array_agg((SELECT x.id::text FROM public.accounts x WHERE x.sfid = u.v) ORDER BY u.n) FROM unnest($1::text[]) WITH ORDINALITY AS u(v, n)"
        );
        assert_eq!(value_expr(&col("account_id", "reference", "bigint"), "p.v3"), "CAST(p.v3 AS bigint)");
    }

    #[test]
    fn statements_name_every_column_once() {
        let cols = [col("name", "string", "text"), col("Annual Revenue", "currency", "numeric")];
        let exprs: Vec<String> = cols.iter().enumerate().map(|(i, c)| value_expr(c, &format!("p.v{}", i + 1))).collect();
        let s = statements("public.t", "id", &["name".into(), "\"Annual Revenue\"".into()], &exprs);
        assert!(s.insert.starts_with("INSERT INTO public.t (name, \"Annual Revenue\", sfid) SELECT p.v1, CAST(p.v2 AS numeric), p.sfid"));
        assert!(s.insert.contains("FROM (SELECT unnest($1::text[]) AS sfid, unnest($2::text[]) AS v1, unnest($3::text[]) AS v2) AS p"));
        assert!(s.insert_checked.ends_with("WHERE NOT EXISTS (SELECT 1 FROM public.t x WHERE x.sfid = p.sfid)"));
        let u = s.update.unwrap();
        assert!(u.contains("SET (name, \"Annual Revenue\") = ROW(p.v1, CAST(p.v2 AS numeric))"));
        assert!(u.contains("<> ALL($4)"), "the pending keys follow the arrays: {u}");
        assert!(!u.contains("sfsync."), "the table's owner cannot read the catalog: {u}");
        assert!(u.contains("IS DISTINCT FROM"));
    }

    #[test]
    fn a_mapping_without_columns_only_inserts_ids() {
        let s = statements("t", "id", &[], &[]);
        assert!(s.update.is_none());
        assert_eq!(s.insert, "INSERT INTO t (sfid) SELECT p.sfid FROM (SELECT unnest($1::text[]) AS sfid) AS p");
    }

    #[test]
    fn cells_empty_is_null_and_offsets_get_a_colon() {
        assert_eq!(cell(Cell::Datetime, ""), None);
        assert_eq!(cell(Cell::Datetime, "2024-05-20T20:49:32.000+0000").as_deref(), Some("2024-05-20T20:49:32.000+00:00"));
        assert_eq!(cell(Cell::Datetime, "2024-05-20T20:49:32.000Z").as_deref(), Some("2024-05-20T20:49:32.000Z"));
        assert_eq!(cell(Cell::Text, "x+0000").as_deref(), Some("x+0000"));
    }

    #[test]
    fn cell_kinds_follow_the_field_and_column() {
        assert_eq!(cell_kind(&col("m", "multipicklist", "text[]")), Cell::Multi);
        assert_eq!(cell_kind(&col("m", "multipicklist", "text")), Cell::Text);
        assert_eq!(cell_kind(&col("j", "string", "jsonb")), Cell::JsonString);
        assert_eq!(cell_kind(&col("d", "datetime", "timestamp with time zone")), Cell::Datetime);
    }

    #[test]
    fn cells_are_borrowed_unless_rewritten() {
        use std::borrow::Cow;
        assert!(matches!(cell(Cell::Datetime, "2024-05-20T20:49:32.000Z"), Some(Cow::Borrowed(_))));
        assert_eq!(cell(Cell::Datetime, "2024-05-20T20:49:32.000-0700").as_deref(), Some("2024-05-20T20:49:32.000-07:00"));
        assert_eq!(cell(Cell::Datetime, "").as_deref(), None);
        assert!(matches!(cell(Cell::Text, "a+0000"), Some(Cow::Borrowed("a+0000"))));
    }

    #[test]
    fn copy_rows_escape_what_copy_text_format_needs() {
        let mut out = Vec::new();
        let values = [
            (Cell::Text, "tab\there, back\\slash"),
            (Cell::Text, "line\nbreak\r"),
            (Cell::Text, ""),
            (Cell::Datetime, "2024-05-20T20:49:32.000+0000"),
            (Cell::Multi, "a;b \"c\";;d\\e"),
            (Cell::JsonString, "say \"hi\"\n"),
        ];
        copy_row(&mut out, values.into_iter(), "001000000000001AAA");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "tab\\there, back\\\\slash\tline\\nbreak\\r\t\\N\t2024-05-20T20:49:32.000+00:00\t{\"a\",\"b \\\\\"c\\\\\"\",\"d\\\\\\\\e\"}\t\"say \\\\\"hi\\\\\"\\\\n\"\t001000000000001AAA\n"
        );
    }
}
