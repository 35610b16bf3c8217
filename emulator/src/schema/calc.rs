//! Calculated fields from the schema file, as definitions: formula fields (a numeric subset:
//! numbers, field references including parent paths such as `Account.AnnualRevenue`, `+ - * /`,
//! parentheses) parsed into [`Expr`], and roll-up summary fields (COUNT/SUM/MIN/MAX of a child
//! object's field over a lookup) as [`Rollup`].
//!
//! Computing their values over the records is `crate::recalc`: the schema stays below the store.

use super::Schema;

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
