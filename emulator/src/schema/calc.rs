//! Calculated fields from the schema file: formula fields (a numeric subset: numbers, field
//! references including parent paths such as `Account.AnnualRevenue`, `+ - * /`, parentheses)
//! and roll-up summary fields (COUNT/SUM/MIN/MAX of a child object's field over a lookup).
//!
//! Like Salesforce, their values change when their inputs change, even on another record,
//! without the record's SystemModstamp (or LastModifiedDate) moving and without change events.
//! The emulator keeps them current at every committed write (`recompute`), so every read path
//! (SOQL, REST retrieve, Bulk query) sees the value a read in Salesforce would compute.
//! A blank input makes the formula blank; division by zero is blank (Salesforce shows #Error!).

use super::{Derived, FieldType, Schema};
use crate::store::{is_deleted, Store};
use crate::value::Value;
use std::collections::HashMap;

#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Num(f64),
    /// Reference fields followed from the record, then the leaf field (positions).
    Field {
        hops: Vec<usize>,
        leaf: usize,
    },
    Neg(Box<Expr>),
    Bin(char, Box<Expr>, Box<Expr>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RollupFn {
    Count,
    Sum,
    Min,
    Max,
}

impl RollupFn {
    pub fn parse(s: &str) -> Option<RollupFn> {
        match s.to_ascii_uppercase().as_str() {
            "COUNT" => Some(RollupFn::Count),
            "SUM" => Some(RollupFn::Sum),
            "MIN" => Some(RollupFn::Min),
            "MAX" => Some(RollupFn::Max),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Rollup {
    pub func: RollupFn,
    pub child: usize,
    /// The child's lookup to this object.
    pub via: usize,
    /// The child field summarized (None for COUNT).
    pub field: Option<usize>,
    /// As written in the schema file, for errors and docs.
    pub source: String,
}

#[derive(Debug, PartialEq)]
enum Tok {
    Num(f64),
    Name(String),
    Op(char),
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = vec![];
    let cs: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() || (c == '.' && cs.get(i + 1).is_some_and(char::is_ascii_digit)) {
            let st = i;
            while i < cs.len() && (cs[i].is_ascii_digit() || cs[i] == '.') {
                i += 1;
            }
            let t: String = cs[st..i].iter().collect();
            out.push(Tok::Num(t.parse().map_err(|_| format!("bad number {t}"))?));
        } else if c.is_ascii_alphabetic() {
            let st = i;
            while i < cs.len() && (cs[i].is_ascii_alphanumeric() || cs[i] == '_' || cs[i] == '.') {
                i += 1;
            }
            out.push(Tok::Name(cs[st..i].iter().collect()));
        } else if "+-*/()".contains(c) {
            out.push(Tok::Op(c));
            i += 1;
        } else {
            return Err(format!("unsupported character {c:?} in formula"));
        }
    }
    Ok(out)
}

struct Parser<'a> {
    toks: Vec<Tok>,
    pos: usize,
    schema: &'a Schema,
    obj: usize,
}

impl Parser<'_> {
    fn expr(&mut self) -> Result<Expr, String> {
        let mut l = self.term()?;
        while let Some(Tok::Op(o @ ('+' | '-'))) = self.toks.get(self.pos) {
            let o = *o;
            self.pos += 1;
            l = Expr::Bin(o, Box::new(l), Box::new(self.term()?));
        }
        Ok(l)
    }
    fn term(&mut self) -> Result<Expr, String> {
        let mut l = self.unary()?;
        while let Some(Tok::Op(o @ ('*' | '/'))) = self.toks.get(self.pos) {
            let o = *o;
            self.pos += 1;
            l = Expr::Bin(o, Box::new(l), Box::new(self.unary()?));
        }
        Ok(l)
    }
    fn unary(&mut self) -> Result<Expr, String> {
        match self.toks.get(self.pos) {
            Some(Tok::Op('-')) => {
                self.pos += 1;
                Ok(Expr::Neg(Box::new(self.unary()?)))
            }
            Some(Tok::Op('(')) => {
                self.pos += 1;
                let e = self.expr()?;
                match self.toks.get(self.pos) {
                    Some(Tok::Op(')')) => {
                        self.pos += 1;
                        Ok(e)
                    }
                    _ => Err("missing )".into()),
                }
            }
            Some(Tok::Num(n)) => {
                let n = *n;
                self.pos += 1;
                Ok(Expr::Num(n))
            }
            Some(Tok::Name(name)) => {
                let name = name.clone();
                self.pos += 1;
                self.path(&name)
            }
            other => Err(format!("unexpected {other:?} in formula")),
        }
    }
    /// `Field` or `Rel.Rel.Field`, resolved from this object.
    fn path(&self, name: &str) -> Result<Expr, String> {
        let parts: Vec<&str> = name.split('.').collect();
        let mut obj = self.obj;
        let mut hops = vec![];
        for rel in &parts[..parts.len() - 1] {
            let def = &self.schema.objects[obj];
            let fi = def.relationship(rel).ok_or_else(|| format!("{}: no relationship {rel}", def.name))?;
            let target =
                def.fields[fi].reference_to.first().and_then(|t| self.schema.object(t)).ok_or_else(|| format!("{rel}: unknown target"))?;
            hops.push(fi);
            obj = target;
        }
        let def = &self.schema.objects[obj];
        let leaf =
            parts.last().and_then(|f| def.field(f)).ok_or_else(|| format!("{}: no field {}", def.name, parts.last().unwrap_or(&"")))?;
        if !def.fields[leaf].ftype.is_numeric() {
            return Err(format!("{}.{} is not numeric: the emulator's formulas are numeric only", def.name, def.fields[leaf].name));
        }
        Ok(Expr::Field { hops, leaf })
    }
}

/// Parses `formula` as a field of object `obj`.
pub fn parse(schema: &Schema, obj: usize, formula: &str) -> Result<Expr, String> {
    let mut p = Parser { toks: lex(formula)?, pos: 0, schema, obj };
    let e = p.expr()?;
    if p.pos != p.toks.len() {
        return Err(format!("unexpected {:?} in formula", p.toks[p.pos]));
    }
    Ok(e)
}

fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Num(n) => Some(*n),
        _ => None,
    }
}

fn eval(e: &Expr, schema: &Schema, store: &Store, obj: usize, rec: &crate::store::Record) -> Option<f64> {
    match e {
        Expr::Num(n) => Some(*n),
        Expr::Neg(a) => eval(a, schema, store, obj, rec).map(|v| -v),
        Expr::Bin(o, a, b) => {
            let (a, b) = (eval(a, schema, store, obj, rec)?, eval(b, schema, store, obj, rec)?);
            match o {
                '+' => Some(a + b),
                '-' => Some(a - b),
                '*' => Some(a * b),
                _ if b == 0.0 => None,
                _ => Some(a / b),
            }
        }
        Expr::Field { hops, leaf } => {
            let mut r = rec;
            let mut o = obj;
            for &fi in hops {
                let (po, seq) = r.get(fi).as_str().and_then(|id| store.find(schema, id))?;
                r = store.tables[po].recs.get(&seq)?;
                o = po;
            }
            let _ = o;
            num(r.get(*leaf))
        }
    }
}

fn typed(t: FieldType, scale: u32, v: Option<f64>) -> Value {
    match v {
        None => Value::Null,
        Some(v) if !v.is_finite() => Value::Null,
        Some(v) if t == FieldType::Int => Value::Int(v.round() as i64),
        Some(v) => {
            let p = 10f64.powi(scale as i32);
            Value::Num((v * p).round() / p)
        }
    }
}

pub fn has_calculated(schema: &Schema) -> bool {
    schema.objects.iter().any(|o| o.fields.iter().any(|f| matches!(f.derived, Derived::Formula(..) | Derived::Rollup(_))))
}

/// Brings every calculated field up to date (roll-ups first: formulas may read them).
/// Records are updated in place: no stamp, no change event.
pub fn recompute(schema: &Schema, store: &mut Store) {
    for (obj, def) in schema.objects.iter().enumerate() {
        for (fi, fd) in def.fields.iter().enumerate() {
            let Derived::Rollup(r) = &fd.derived else { continue };
            let mut acc: HashMap<String, (u64, Option<f64>)> = HashMap::new();
            let cdef = &schema.objects[r.child];
            for c in store.tables[r.child].recs.values().filter(|c| !is_deleted(cdef, c)) {
                let Some(parent) = c.get(r.via).as_str() else { continue };
                let v = r.field.and_then(|f| num(c.get(f)));
                let e = acc.entry(parent.to_string()).or_insert((0, None));
                e.0 += 1;
                if let Some(v) = v {
                    e.1 = Some(match (r.func, e.1) {
                        (RollupFn::Min, Some(a)) => a.min(v),
                        (RollupFn::Max, Some(a)) => a.max(v),
                        (_, Some(a)) => a + v,
                        (_, None) => v,
                    });
                }
            }
            for rec in store.tables[obj].recs.values_mut() {
                let id = rec.get(0).as_str().unwrap_or("");
                let v = match (r.func, acc.get(id)) {
                    (RollupFn::Count, a) => Some(a.map_or(0, |a| a.0) as f64),
                    (RollupFn::Sum, a) => Some(a.and_then(|a| a.1).unwrap_or(0.0)),
                    (_, a) => a.and_then(|a| a.1),
                };
                let v = typed(fd.ftype, fd.scale, v);
                if *rec.get(fi) != v {
                    rec.set(fi, v);
                }
            }
        }
    }
    for (obj, def) in schema.objects.iter().enumerate() {
        let formulas: Vec<(usize, &Expr)> = def
            .fields
            .iter()
            .enumerate()
            .filter_map(|(fi, f)| if let Derived::Formula(_, e) = &f.derived { Some((fi, e)) } else { None })
            .collect();
        if formulas.is_empty() {
            continue;
        }
        let updates: Vec<(u64, usize, Value)> = store.tables[obj]
            .recs
            .iter()
            .flat_map(|(seq, rec)| {
                formulas
                    .iter()
                    .map(|(fi, e)| (*seq, *fi, typed(def.fields[*fi].ftype, def.fields[*fi].scale, eval(e, schema, store, obj, rec))))
                    .filter(|(_, fi, v)| rec.get(*fi) != v)
                    .collect::<Vec<_>>()
            })
            .collect();
        for (seq, fi, v) in updates {
            if let Some(rec) = store.tables[obj].recs.get_mut(&seq) {
                rec.set(fi, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_parse_with_precedence_and_paths() {
        let schema = crate::schema::standard::default_schema();
        let opp = schema.object("Opportunity").unwrap();
        let e = parse(&schema, opp, "Amount * 2 + Account.AnnualRevenue / (1 - -0.5)").unwrap();
        let Expr::Bin('+', l, r) = e else { panic!("{e:?}") };
        assert!(matches!(*l, Expr::Bin('*', _, _)));
        assert!(matches!(*r, Expr::Bin('/', _, _)));
        assert!(parse(&schema, opp, "Amount +").is_err());
        assert!(parse(&schema, opp, "Name * 2").is_err(), "text fields are not in the subset");
        assert!(parse(&schema, opp, "Nope__r.Amount").is_err());
    }
}
