//! The SOQL syntax tree: what the parser produces and the evaluator compiles. Positions
//! (`pos`) are byte offsets into the query text, for errors that point at the culprit.

#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Date(i32),
    DateTime(i64),
    /// A relative date literal (`TODAY`, `LAST_N_DAYS:7`): name upper-cased, `n` (0 if none).
    Relative(String, i64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    pub text: String,
    pub pos: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AggFn {
    Count,
    CountDistinct,
    Sum,
    Avg,
    Min,
    Max,
}

impl AggFn {
    pub fn from_name(s: &str) -> Option<AggFn> {
        Some(match s.to_ascii_uppercase().as_str() {
            "COUNT" => AggFn::Count,
            "COUNT_DISTINCT" => AggFn::CountDistinct,
            "SUM" => AggFn::Sum,
            "AVG" => AggFn::Avg,
            "MIN" => AggFn::Min,
            "MAX" => AggFn::Max,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            AggFn::Count => "COUNT",
            AggFn::CountDistinct => "COUNT_DISTINCT",
            AggFn::Sum => "SUM",
            AggFn::Avg => "AVG",
            AggFn::Min => "MIN",
            AggFn::Max => "MAX",
        }
    }
}

/// `SUM(Amount)`; `field` is None only for `COUNT()`.
#[derive(Debug, Clone, PartialEq)]
pub struct Agg {
    pub func: AggFn,
    pub field: Option<Path>,
    pub pos: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldsKind {
    All,
    Standard,
    Custom,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SelectItem {
    /// A field path with an optional alias (aliases are only valid in aggregate queries).
    Field(Path, Option<Path>),
    /// `COUNT()`.
    CountAll(usize),
    /// An aggregate function with an optional alias.
    Agg(Agg, Option<Path>),
    /// `FIELDS(ALL|STANDARD|CUSTOM)`.
    Fields(FieldsKind, usize),
    /// A child relationship subquery `(SELECT ... FROM Contacts ...)`.
    SubQuery(Box<Query>, usize),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Like,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
    Cmp {
        field: Path,
        op: CmpOp,
        value: Lit,
        value_pos: usize,
    },
    In {
        field: Path,
        negated: bool,
        values: Vec<Lit>,
        value_pos: usize,
    },
    /// Semi-join / anti-join: `field [NOT] IN (SELECT f FROM X ...)`.
    InQuery {
        field: Path,
        negated: bool,
        query: Box<Query>,
        value_pos: usize,
    },
    /// `field INCLUDES ('a;b', 'c')` / `EXCLUDES`: each string is a `;`-separated set.
    Includes {
        field: Path,
        negated: bool,
        values: Vec<String>,
        value_pos: usize,
    },
    /// A comparison on an aggregate (HAVING).
    AggCmp {
        agg: Agg,
        op: CmpOp,
        value: Lit,
        value_pos: usize,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderItem {
    pub field: Path,
    /// `ORDER BY SUM(Amount)` in aggregate queries.
    pub agg: Option<Agg>,
    pub desc: bool,
    pub nulls_last: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub select: Vec<SelectItem>,
    pub from: Path,
    pub filter: Option<Cond>,
    pub group_by: Vec<Path>,
    pub having: Option<Cond>,
    pub order: Vec<OrderItem>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
    /// Where `LIMIT` is (for errors that point at it) or the end of the query.
    pub limit_pos: usize,
}
