//! The capture trigger's columns in its table's tuple descriptor, and a row's values.
//!
//! Columns are found once per trigger and descriptor, not by name for every row and column:
//! each lookup by name scans the descriptor, so a table of 50 mapped columns paid 50 scans of
//! 50 names per row. The positions found are checked against the descriptor for every row
//! (the same descriptor, the same number of columns, each column still there under its name
//! and type), so a column renamed, dropped, retyped or added since is seen. A row's values are
//! taken apart once (`heap_deform_tuple`), not column by column, which walks the row from its
//! start again for every column after a variable-length one.

use pgrx::pg_sys::{self, Datum, HeapTuple, TupleDesc};
use pgrx::PgTupleDesc;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CStr;
use std::rc::Rc;

extern "C" {
    // utils/datum.h (not in pgrx's bindings): binary equality, what Postgres itself uses
    // to decide whether an UPDATE changed a column.
    fn datumIsEqual(value1: Datum, value2: Datum, typ_by_val: bool, typ_len: i32) -> bool;
}

/// A column found in the descriptor, with what reading it needs.
pub(super) struct Col {
    pub name: String,
    /// 0-based position in the descriptor.
    index: usize,
    typid: pg_sys::Oid,
    output: pg_sys::Oid,
    byval: bool,
    len: i16,
}

/// The columns a capture trigger reads: its key column, `sfid` when the table has one, and
/// the mapped columns the table still has (those it lacks are in `missing`).
pub(super) struct Columns {
    desc: TupleDesc,
    natts: usize,
    /// The names asked for (key column first), as they were when found.
    asked: Vec<String>,
    pub pk: Option<Col>,
    pub sfid: Option<Col>,
    pub mapped: Vec<Col>,
    pub missing: Vec<String>,
}

thread_local! {
    /// By trigger oid: the columns as last found.
    static FOUND: RefCell<HashMap<u32, Rc<Columns>>> = RefCell::new(HashMap::new());
}

/// The columns trigger `trigger` reads on a table of descriptor `desc`.
pub(super) fn find<'c>(trigger: pg_sys::Oid, desc: TupleDesc, pk: &str, mapped: impl Iterator<Item = &'c str>) -> Rc<Columns> {
    let mut asked = vec![pk];
    for c in mapped {
        asked.push(c); // each &'c str shortened to pk's lifetime
    }
    let key = trigger.to_u32();
    if let Some(c) = FOUND.with(|f| f.borrow().get(&key).cloned()).filter(|c| c.still(desc, &asked)) {
        return c;
    }
    let found = Rc::new(Columns::new(desc, &asked));
    FOUND.with(|f| f.borrow_mut().insert(key, found.clone()));
    found
}

impl Columns {
    fn new(desc: TupleDesc, asked: &[&str]) -> Columns {
        let tupdesc = unsafe { PgTupleDesc::from_pg_unchecked(desc) };
        let mut by_name: HashMap<&str, usize> = HashMap::with_capacity(tupdesc.len());
        for (i, att) in tupdesc.iter().enumerate() {
            if !att.attisdropped {
                if let Ok(name) = unsafe { CStr::from_ptr(att.attname.data.as_ptr()) }.to_str() {
                    by_name.insert(name, i);
                }
            }
        }
        let col = |name: &str| {
            by_name.get(name).map(|&index| {
                let att = tupdesc.get(index).expect("found above");
                let (mut output, mut varlena) = (pg_sys::InvalidOid, false);
                unsafe { pg_sys::getTypeOutputInfo(att.atttypid, &mut output, &mut varlena) };
                Col { name: name.to_string(), index, typid: att.atttypid, output, byval: att.attbyval, len: att.attlen }
            })
        };
        let (mut mapped, mut missing) = (Vec::new(), Vec::new());
        for name in &asked[1..] {
            match col(name) {
                Some(c) => mapped.push(c),
                None => missing.push(name.to_string()),
            }
        }
        Columns {
            desc,
            natts: tupdesc.len(),
            asked: asked.iter().map(|s| s.to_string()).collect(),
            pk: col(asked[0]),
            sfid: col("sfid"),
            mapped,
            missing,
        }
    }

    /// Whether these positions still hold for `desc` and the names asked.
    fn still(&self, desc: TupleDesc, asked: &[&str]) -> bool {
        if !std::ptr::eq(self.desc, desc) || unsafe { (*desc).natts } as usize != self.natts || !self.asked.iter().eq(asked.iter()) {
            return false;
        }
        let tupdesc = unsafe { PgTupleDesc::from_pg_unchecked(desc) };
        self.pk.iter().chain(self.sfid.iter()).chain(self.mapped.iter()).all(|c| {
            tupdesc.get(c.index).is_some_and(|att| {
                !att.attisdropped
                    && att.atttypid == c.typid
                    && unsafe { CStr::from_ptr(att.attname.data.as_ptr()) }.to_bytes() == c.name.as_bytes()
            })
        })
    }
}

/// A row's values, taken apart once.
pub(super) struct Values {
    values: Vec<Datum>,
    nulls: Vec<bool>,
}

impl Values {
    pub fn of(desc: TupleDesc, tuple: HeapTuple) -> Values {
        let n = unsafe { (*desc).natts } as usize;
        let mut v = Values { values: vec![Datum::from(0); n], nulls: vec![true; n] };
        unsafe { pg_sys::heap_deform_tuple(tuple, desc, v.values.as_mut_ptr(), v.nulls.as_mut_ptr()) };
        v
    }

    /// The column's text form (what `::text` gives); None when NULL.
    pub fn text(&self, c: &Col) -> Option<String> {
        if self.nulls[c.index] {
            return None;
        }
        unsafe {
            let p = pg_sys::OidOutputFunctionCall(c.output, self.values[c.index]);
            let s = CStr::from_ptr(p).to_string_lossy().into_owned();
            pg_sys::pfree(p.cast());
            Some(s)
        }
    }

    /// Whether the column holds the same value in both rows (both NULL counts as the same).
    pub fn same(&self, other: &Values, c: &Col) -> bool {
        match (self.nulls[c.index], other.nulls[c.index]) {
            (false, false) => unsafe { datumIsEqual(self.values[c.index], other.values[c.index], c.byval, c.len as i32) },
            (a, b) => a == b,
        }
    }
}

/// Whether the table of descriptor `desc` has a column of that name.
pub(crate) fn has_column(desc: TupleDesc, name: &str) -> bool {
    let Ok(c) = std::ffi::CString::new(name) else { return false };
    unsafe { pg_sys::SPI_fnumber(desc, c.as_ptr()) > 0 }
}
