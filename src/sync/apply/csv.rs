//! Bulk CSV rows in the shape the sink loads them: [`Shape`] says where the mapping's
//! fields are in the results, [`Batch`] holds a batch's plain rows already laid out as
//! text datums (or in COPY format) and the rows that need the record-by-record treatment.
//! A batch keeps every row as read too, flat ([`Table`]): the fields of all its rows in one
//! record, so a row costs no allocation of its own, to build or to free.
//! Filled by the Bulk source's reader thread, so nothing here calls Postgres except
//! [`TextColumn::datum`], which the backend calls.

use crate::error::{Result, SyncError};
use crate::plan::load as plan;
use crate::sync::Mapping;
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use salesforce::{Record, StringRecord};
use serde_json::Value;

/// Where the mapping's fields are in the CSV.
#[derive(Debug, Clone)]
pub struct Shape {
    headers: StringRecord,
    id: usize,
    stamp: Option<usize>,
    pgid: Option<usize>,
    deleted: Option<usize>,
    /// Per mapped column: its CSV position (None: not in the results, stays NULL) and how
    /// its text becomes the column's value.
    columns: Vec<(Option<usize>, plan::Cell)>,
}

impl Shape {
    pub fn new(m: &Mapping, headers: &StringRecord) -> Result<Shape> {
        let at = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
        let missing = || SyncError::Invalid(format!("Bulk query results of {} have no Id column", m.sobject));
        Ok(Shape {
            id: at("Id").ok_or_else(missing)?,
            stamp: at("SystemModstamp"),
            pgid: at(&m.external_id),
            deleted: at("IsDeleted"),
            columns: m.columns.iter().map(|c| (at(&c.field), plan::cell_kind(c))).collect(),
            headers: headers.clone(),
        })
    }

    /// The row as the pull's field map (empty = null, flags as booleans).
    pub fn record(&self, row: &StringRecord) -> Record {
        let mut r = salesforce::client::bulk::record_of(&self.headers, row);
        if let Some(v) = r.get_mut("IsDeleted") {
            *v = Value::Bool(v.as_str() == Some("true"));
        }
        r
    }

    fn plain(&self, row: &StringRecord) -> bool {
        let empty = |i: Option<usize>| i.and_then(|i| row.get(i)).is_none_or(str::is_empty);
        empty(self.pgid) && self.deleted.and_then(|i| row.get(i)) != Some("true")
    }

    pub(super) fn id<'r>(&self, row: &'r StringRecord) -> &'r str {
        row.get(self.id).unwrap_or_default()
    }
}

/// Rows as read, stored flat: every field of every row in one `StringRecord` (one buffer for
/// the text, one for the field bounds) instead of a record per row.
#[derive(Debug, Default)]
pub struct Table {
    flat: StringRecord,
    width: usize,
    len: usize,
}

impl Table {
    /// Room for `rows` rows of `bytes` bytes of text in all.
    pub fn new(width: usize, rows: usize, bytes: usize) -> Table {
        Table { flat: StringRecord::with_capacity(bytes, width * rows), width, len: 0 }
    }

    /// Appends a row (fields it lacks are empty, fields past the width are not kept).
    pub fn push(&mut self, row: &StringRecord) {
        for i in 0..self.width {
            self.flat.push_field(row.get(i).unwrap_or_default());
        }
        self.len += 1;
    }

    /// Field `field` of row `row`.
    pub fn get(&self, row: usize, field: usize) -> Option<&str> {
        if row >= self.len || field >= self.width {
            return None;
        }
        self.flat.get(row * self.width + field)
    }

    /// Row `i` as a record of its own.
    pub fn row(&self, i: usize) -> StringRecord {
        (0..self.width).map(|f| self.get(i, f).unwrap_or_default()).collect()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// One column of a batch as text datums laid out the way `construct_md_array` takes them:
/// each value a varlena with a 4-byte header, 4-byte aligned, all in one buffer. Plain
/// Rust (no Postgres calls), so the reader thread can build it.
#[derive(Debug, Default)]
pub struct TextColumn {
    words: Vec<u32>,
    /// Per value: its first word, or None for NULL.
    at: Vec<Option<usize>>,
}

impl TextColumn {
    pub fn push(&mut self, v: Option<&str>) {
        let Some(s) = v else {
            self.at.push(None);
            return;
        };
        let len = 4 + s.len();
        let start = self.words.len();
        self.words.resize(start + len.div_ceil(4), 0);
        // SET_VARSIZE_4B: the length sits in the header's upper 30 bits (little-endian)
        // or lower 30 bits (big-endian), the two low/high bits 00 mean "4-byte header".
        self.words[start] = if cfg!(target_endian = "little") { (len as u32) << 2 } else { len as u32 & 0x3FFF_FFFF };
        let bytes: &mut [u8] = as_bytes_mut(&mut self.words[start + 1..]);
        bytes[..s.len()].copy_from_slice(s.as_bytes());
        self.at.push(Some(start));
    }

    pub fn len(&self) -> usize {
        self.at.len()
    }

    /// The column as a `text[]` parameter (built in the current memory context).
    pub(super) fn datum(&self) -> DatumWithOid<'static> {
        let mut elems: Vec<pg_sys::Datum> = self
            .at
            .iter()
            .map(|at| match at {
                Some(w) => pg_sys::Datum::from(self.words[*w..].as_ptr()),
                None => pg_sys::Datum::from(0),
            })
            .collect();
        let mut nulls: Vec<bool> = self.at.iter().map(Option::is_none).collect();
        let mut dims = [self.at.len() as std::ffi::c_int];
        let mut lbs = [1 as std::ffi::c_int];
        // SAFETY: every non-null element points at a well-formed 4-byte-header varlena that
        // outlives the call; construct_md_array copies them into a palloc'd array.
        unsafe {
            let arr = pg_sys::construct_md_array(
                elems.as_mut_ptr(),
                nulls.as_mut_ptr(),
                1,
                dims.as_mut_ptr(),
                lbs.as_mut_ptr(),
                pg_sys::TEXTOID,
                -1,
                false,
                b'i' as std::ffi::c_char,
            );
            DatumWithOid::new(pg_sys::Datum::from(arr), pg_sys::TEXTARRAYOID)
        }
    }
}

/// The bytes of some words (u32 has no padding and any byte pattern is valid).
fn as_bytes_mut(words: &mut [u32]) -> &mut [u8] {
    // SAFETY: same memory, u8 has alignment 1, the length is in bytes.
    unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), std::mem::size_of_val(words)) }
}

/// A batch of Bulk CSV rows, with the plain ones already in columns, or in COPY format.
#[derive(Debug, Default)]
pub struct Batch {
    /// Every row, as read (the pull's apply and the resume point use them).
    rows: Table,
    pub(super) ids: TextColumn,
    pub(super) columns: Vec<TextColumn>,
    /// The plain rows in COPY text format, instead of `columns` (see `columnar::copy_mode`).
    pub(super) copy: Option<Vec<u8>>,
    /// Positions in `rows` (ascending) of the rows that need the pull's apply.
    pub(super) special: Vec<usize>,
}

impl Batch {
    pub fn new(shape: &Shape, capacity: usize, copy: bool) -> Batch {
        Batch {
            rows: Table::new(shape.headers.len(), capacity, 0),
            columns: if copy { vec![] } else { shape.columns.iter().map(|_| TextColumn::default()).collect() },
            copy: copy.then(Vec::new),
            ..Default::default()
        }
    }

    pub fn push(&mut self, shape: &Shape, row: &StringRecord) {
        if shape.plain(row) {
            let id = shape.id(row);
            self.ids.push(Some(id));
            let value = |at: Option<usize>| at.and_then(|i| row.get(i)).unwrap_or_default();
            if let Some(out) = &mut self.copy {
                plan::copy_row(out, shape.columns.iter().map(|(at, kind)| (*kind, value(*at))), id);
            } else {
                for ((at, kind), col) in shape.columns.iter().zip(&mut self.columns) {
                    col.push(plan::cell(*kind, value(*at)).as_deref());
                }
            }
        } else {
            self.special.push(self.rows.len());
        }
        self.rows.push(row);
    }

    /// An empty batch with this one's room (the next batch of a load is about as large).
    pub fn empty_like(&self, shape: &Shape) -> Batch {
        let mut next = Batch::new(shape, self.len(), self.copy.is_some());
        next.rows = Table::new(self.rows.width, self.rows.len, self.rows.flat.as_byte_record().as_slice().len());
        if let Some(c) = &self.copy {
            next.copy = Some(Vec::with_capacity(c.len()));
        }
        next
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub(super) fn records(&self, shape: &Shape, which: impl Iterator<Item = usize>) -> Vec<Record> {
        which.map(|i| shape.record(&self.rows.row(i))).collect()
    }

    /// The Id of row `i`.
    pub(super) fn id(&self, shape: &Shape, i: usize) -> &str {
        self.rows.get(i, shape.id).unwrap_or_default()
    }

    /// The last row as the pull's field map (the resume point).
    pub fn last_record(&self, shape: &Shape) -> Option<Record> {
        self.len().checked_sub(1).map(|i| shape.record(&self.rows.row(i)))
    }

    /// The newest SystemModstamp of the rows (as a timestamptz literal).
    pub fn newest_stamp(&self, shape: &Shape) -> Option<String> {
        let at = shape.stamp?;
        (0..self.len()).filter_map(|i| self.rows.get(i, at)).filter(|s| !s.is_empty()).max().map(crate::plan::convert::colon_offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_columns_hold_4_byte_header_varlenas() {
        let mut c = TextColumn::default();
        c.push(Some("abcde"));
        c.push(None);
        c.push(Some(""));
        assert_eq!(c.len(), 3);
        assert_eq!(c.at, vec![Some(0), None, Some(3)], "9 bytes take 3 words; NULL takes none");
        let header = |w: u32| if cfg!(target_endian = "little") { w >> 2 } else { w & 0x3FFF_FFFF };
        assert_eq!(header(c.words[0]), 9);
        assert_eq!(&as_bytes_mut(&mut c.words[1..3])[..5], b"abcde");
        assert_eq!(header(c.words[3]), 4, "an empty string is a bare header");
        #[cfg(target_endian = "little")]
        assert_eq!(c.words[0] & 0b11, 0, "low bits 00: a 4-byte header, not short or external");
    }
}
