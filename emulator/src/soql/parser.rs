//! Recursive-descent SOQL parser for the supported subset (see README.md), producing the
//! syntax tree of `ast.rs`.

use super::ast::{Agg, AggFn, CmpOp, Cond, FieldsKind, Lit, OrderItem, Path, Query, SelectItem};
use super::lexer::{lex, Tok, Token};
use super::SoqlError;

struct Parser {
    toks: Vec<Token>,
    i: usize,
}

const RESERVED: &[&str] = &[
    "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY", "LIMIT", "OFFSET", "NULL", "TRUE", "FALSE", "ASC", "DESC",
    "NULLS", "GROUP", "HAVING", "WITH", "FOR", "USING", "INCLUDES", "EXCLUDES",
];

fn unexpected(t: &Token) -> SoqlError {
    SoqlError::malformed(format!("unexpected token: '{}'", t.text), t.pos)
}

/// Relative date literals: name → whether it takes `:n`.
pub fn date_literal(name: &str) -> Option<bool> {
    const PLAIN: &[&str] = &[
        "YESTERDAY",
        "TODAY",
        "TOMORROW",
        "LAST_WEEK",
        "THIS_WEEK",
        "NEXT_WEEK",
        "LAST_MONTH",
        "THIS_MONTH",
        "NEXT_MONTH",
        "LAST_90_DAYS",
        "NEXT_90_DAYS",
        "THIS_QUARTER",
        "LAST_QUARTER",
        "NEXT_QUARTER",
        "THIS_YEAR",
        "LAST_YEAR",
        "NEXT_YEAR",
    ];
    const WITH_N: &[&str] = &[
        "LAST_N_DAYS",
        "NEXT_N_DAYS",
        "LAST_N_WEEKS",
        "NEXT_N_WEEKS",
        "LAST_N_MONTHS",
        "NEXT_N_MONTHS",
        "LAST_N_QUARTERS",
        "NEXT_N_QUARTERS",
        "LAST_N_YEARS",
        "NEXT_N_YEARS",
        "N_DAYS_AGO",
        "N_WEEKS_AGO",
        "N_MONTHS_AGO",
        "N_QUARTERS_AGO",
        "N_YEARS_AGO",
    ];
    let up = name.to_ascii_uppercase();
    if PLAIN.contains(&up.as_str()) {
        Some(false)
    } else if WITH_N.contains(&up.as_str()) {
        Some(true)
    } else {
        None
    }
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.toks[self.i]
    }
    fn peek_at(&self, k: usize) -> &Tok {
        &self.toks[(self.i + k).min(self.toks.len() - 1)].tok
    }
    fn next(&mut self) -> Token {
        let t = self.toks[self.i].clone();
        if self.i + 1 < self.toks.len() {
            self.i += 1;
        }
        t
    }
    fn eat_kw(&mut self, kw: &str) -> bool {
        if self.peek().is_kw(kw) {
            self.next();
            true
        } else {
            false
        }
    }
    fn expect_kw(&mut self, kw: &str) -> Result<Token, SoqlError> {
        if self.peek().is_kw(kw) {
            Ok(self.next())
        } else {
            Err(unexpected(self.peek()))
        }
    }
    fn expect(&mut self, tok: Tok) -> Result<Token, SoqlError> {
        if self.peek().tok == tok {
            Ok(self.next())
        } else {
            Err(unexpected(self.peek()))
        }
    }
    fn is_plain_ident(&self) -> bool {
        matches!(&self.peek().tok, Tok::Ident(s) if !RESERVED.iter().any(|r| r.eq_ignore_ascii_case(s)))
    }
    /// A field path: an identifier that isn't a reserved word.
    fn path(&mut self) -> Result<Path, SoqlError> {
        let t = self.peek().clone();
        match &t.tok {
            Tok::Ident(s) if self.is_plain_ident() => {
                self.next();
                Ok(Path { text: s.clone(), pos: t.pos })
            }
            _ => Err(unexpected(&t)),
        }
    }
    /// An optional alias after a select item: a plain identifier without dots, followed by `,`
    /// or `FROM` (so `SELECT Id FORM Account` still fails at `FORM`).
    fn alias(&mut self) -> Option<Path> {
        let next = &self.toks[(self.i + 1).min(self.toks.len() - 1)];
        let ends_item = next.tok == Tok::Comma || next.is_kw("FROM");
        if self.is_plain_ident() && !self.peek().text.contains('.') && ends_item {
            let t = self.next();
            return Some(Path { text: t.text, pos: t.pos });
        }
        None
    }
    /// `FN(` ahead: an aggregate call.
    fn at_agg(&self) -> bool {
        matches!(&self.peek().tok, Tok::Ident(s) if AggFn::from_name(s).is_some()) && *self.peek_at(1) == Tok::LParen
    }
    fn agg(&mut self) -> Result<Agg, SoqlError> {
        let t = self.next();
        let func = AggFn::from_name(&t.text).ok_or_else(|| unexpected(&t))?;
        self.expect(Tok::LParen)?;
        let field = if func == AggFn::Count && self.peek().tok == Tok::RParen { None } else { Some(self.path()?) };
        self.expect(Tok::RParen)?;
        Ok(Agg { func, field, pos: t.pos })
    }

    fn query(&mut self) -> Result<Query, SoqlError> {
        self.expect_kw("SELECT")?;
        let mut select = vec![];
        loop {
            if self.peek().is_kw("COUNT") && *self.peek_at(1) == Tok::LParen && *self.peek_at(2) == Tok::RParen {
                let pos = self.next().pos;
                self.next();
                self.next();
                select.push(SelectItem::CountAll(pos));
            } else if self.at_agg() {
                let agg = self.agg()?;
                let alias = self.alias();
                select.push(SelectItem::Agg(agg, alias));
            } else if self.peek().is_kw("FIELDS") && *self.peek_at(1) == Tok::LParen {
                let pos = self.next().pos;
                self.next();
                let t = self.next();
                let kind = match t.text.to_ascii_uppercase().as_str() {
                    "ALL" => FieldsKind::All,
                    "STANDARD" => FieldsKind::Standard,
                    "CUSTOM" => FieldsKind::Custom,
                    _ => return Err(unexpected(&t)),
                };
                self.expect(Tok::RParen)?;
                select.push(SelectItem::Fields(kind, pos));
            } else if self.peek().tok == Tok::LParen && self.toks.get(self.i + 1).is_some_and(|t| t.is_kw("SELECT")) {
                let pos = self.next().pos;
                let sub = self.query()?;
                self.expect(Tok::RParen)?;
                select.push(SelectItem::SubQuery(Box::new(sub), pos));
            } else {
                let p = self.path()?;
                let alias = self.alias();
                select.push(SelectItem::Field(p, alias));
            }
            if self.peek().tok == Tok::Comma {
                self.next();
            } else {
                break;
            }
        }
        self.expect_kw("FROM")?;
        let from = self.path()?;
        let filter = if self.eat_kw("WHERE") { Some(self.expr()?) } else { None };
        let mut group_by = vec![];
        if self.eat_kw("GROUP") {
            self.expect_kw("BY")?;
            if self.peek().is_kw("ROLLUP") || self.peek().is_kw("CUBE") {
                return Err(SoqlError::malformed("GROUP BY ROLLUP/CUBE is not supported by the emulator", self.peek().pos));
            }
            loop {
                group_by.push(self.path()?);
                if self.peek().tok == Tok::Comma {
                    self.next();
                } else {
                    break;
                }
            }
        }
        let having = if self.eat_kw("HAVING") { Some(self.expr()?) } else { None };
        let mut order = vec![];
        if self.eat_kw("ORDER") {
            self.expect_kw("BY")?;
            loop {
                let (field, agg) = if self.at_agg() {
                    let agg = self.agg()?;
                    let p = agg.field.clone().unwrap_or(Path { text: "Id".into(), pos: agg.pos });
                    (p, Some(agg))
                } else {
                    (self.path()?, None)
                };
                let desc = if self.eat_kw("DESC") {
                    true
                } else {
                    self.eat_kw("ASC");
                    false
                };
                // Salesforce's default: nulls first ascending, nulls last descending.
                let mut nulls_last = desc;
                if self.eat_kw("NULLS") {
                    if self.eat_kw("LAST") {
                        nulls_last = true;
                    } else {
                        self.expect_kw("FIRST")?;
                        nulls_last = false;
                    }
                }
                order.push(OrderItem { field, agg, desc, nulls_last });
                if self.peek().tok == Tok::Comma {
                    self.next();
                } else {
                    break;
                }
            }
        }
        let mut limit = None;
        let mut offset = None;
        let mut limit_pos = self.peek().pos;
        if self.peek().is_kw("LIMIT") {
            limit_pos = self.next().pos;
            limit = Some(self.count()?);
        }
        if self.eat_kw("OFFSET") {
            offset = Some(self.count()?);
        }
        Ok(Query { select, from, filter, group_by, having, order, limit, offset, limit_pos })
    }

    fn count(&mut self) -> Result<u64, SoqlError> {
        let t = self.next();
        match t.tok {
            Tok::Num(n) if n >= 0.0 && n.fract() == 0.0 && !t.text.contains('.') => Ok(n as u64),
            _ => Err(unexpected(&t)),
        }
    }

    /// Conditions joined by one kind of operator: SOQL rejects mixing AND and OR without
    /// parentheses.
    fn expr(&mut self) -> Result<Cond, SoqlError> {
        let first = self.unary()?;
        let joiner = if self.peek().is_kw("AND") {
            "AND"
        } else if self.peek().is_kw("OR") {
            "OR"
        } else {
            return Ok(first);
        };
        let mut parts = vec![first];
        while self.eat_kw(joiner) {
            parts.push(self.unary()?);
        }
        if self.peek().is_kw("AND") || self.peek().is_kw("OR") {
            return Err(unexpected(self.peek()));
        }
        Ok(if joiner == "AND" { Cond::And(parts) } else { Cond::Or(parts) })
    }

    fn cmp_op(&mut self) -> Result<CmpOp, SoqlError> {
        let t = self.next();
        Ok(match &t.tok {
            Tok::Op("=") => CmpOp::Eq,
            Tok::Op("!=") => CmpOp::Ne,
            Tok::Op("<") => CmpOp::Lt,
            Tok::Op("<=") => CmpOp::Le,
            Tok::Op(">") => CmpOp::Gt,
            Tok::Op(">=") => CmpOp::Ge,
            Tok::Ident(s) if s.eq_ignore_ascii_case("LIKE") => CmpOp::Like,
            _ => return Err(unexpected(&t)),
        })
    }

    fn unary(&mut self) -> Result<Cond, SoqlError> {
        if self.eat_kw("NOT") {
            return Ok(Cond::Not(Box::new(self.unary()?)));
        }
        if self.peek().tok == Tok::LParen {
            self.next();
            let c = self.expr()?;
            self.expect(Tok::RParen)?;
            return Ok(c);
        }
        if self.at_agg() {
            let agg = self.agg()?;
            let op = self.cmp_op()?;
            let value_pos = self.peek().pos;
            let value = self.literal()?;
            return Ok(Cond::AggCmp { agg, op, value, value_pos });
        }
        let field = self.path()?;
        if self.peek().is_kw("INCLUDES") || self.peek().is_kw("EXCLUDES") {
            let negated = self.next().is_kw("EXCLUDES");
            let open = self.expect(Tok::LParen)?;
            let mut values = vec![];
            loop {
                let t = self.next();
                match t.tok {
                    Tok::Str(s) => values.push(s),
                    _ => return Err(unexpected(&t)),
                }
                if self.peek().tok == Tok::Comma {
                    self.next();
                } else {
                    break;
                }
            }
            self.expect(Tok::RParen)?;
            return Ok(Cond::Includes { field, negated, values, value_pos: open.pos });
        }
        let negated = self.eat_kw("NOT");
        if self.peek().is_kw("IN") {
            self.next();
            let open = self.expect(Tok::LParen)?;
            if self.peek().is_kw("SELECT") {
                let query = self.query()?;
                self.expect(Tok::RParen)?;
                return Ok(Cond::InQuery { field, negated, query: Box::new(query), value_pos: open.pos });
            }
            let mut values = vec![];
            loop {
                values.push(self.literal()?);
                if self.peek().tok == Tok::Comma {
                    self.next();
                } else {
                    break;
                }
            }
            self.expect(Tok::RParen)?;
            return Ok(Cond::In { field, negated, values, value_pos: open.pos });
        }
        if negated {
            return Err(unexpected(self.peek()));
        }
        let op = self.cmp_op()?;
        let value_pos = self.peek().pos;
        let value = self.literal()?;
        Ok(Cond::Cmp { field, op, value, value_pos })
    }

    fn literal(&mut self) -> Result<Lit, SoqlError> {
        let t = self.next();
        Ok(match t.tok {
            Tok::Str(s) => Lit::Str(s),
            Tok::Num(n) => Lit::Num(n),
            Tok::Date(d) => Lit::Date(d),
            Tok::DateTime(ms) => Lit::DateTime(ms),
            Tok::Ident(ref s) if s.eq_ignore_ascii_case("null") => Lit::Null,
            Tok::Ident(ref s) if s.eq_ignore_ascii_case("true") => Lit::Bool(true),
            Tok::Ident(ref s) if s.eq_ignore_ascii_case("false") => Lit::Bool(false),
            Tok::Ident(ref s) => match date_literal(s) {
                Some(false) => Lit::Relative(s.to_ascii_uppercase(), 0),
                Some(true) => {
                    if self.peek().tok != Tok::Colon {
                        return Err(SoqlError::malformed(format!("unexpected token: '{}'", t.text), t.pos));
                    }
                    self.next();
                    let n = self.next();
                    match n.tok {
                        Tok::Num(v) if v >= 0.0 && v.fract() == 0.0 && !n.text.contains('.') => {
                            Lit::Relative(s.to_ascii_uppercase(), v as i64)
                        }
                        _ => return Err(unexpected(&n)),
                    }
                }
                None => return Err(unexpected(&t)),
            },
            _ => return Err(unexpected(&t)),
        })
    }
}

pub fn parse(q: &str) -> Result<Query, SoqlError> {
    let toks = lex(q)?;
    let mut p = Parser { toks, i: 0 };
    let query = p.query()?;
    if p.peek().tok != Tok::Eof {
        return Err(unexpected(p.peek()));
    }
    Ok(query)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(q: &str) -> String {
        parse(q).unwrap_err().message
    }

    #[test]
    fn parses_full_query() {
        let q = parse(
            "SELECT Id, Name, Account.Name, COUNT() FROM Contact WHERE (Name LIKE 'A%' OR Email = null) \
             AND NOT Birthdate > 2020-01-01 AND CreatedDate >= 2024-05-20T20:49:32.000+02:00 \
             AND Id NOT IN ('a','b') ORDER BY Name DESC NULLS FIRST, Id LIMIT 10 OFFSET 5",
        )
        .unwrap();
        assert_eq!(q.select.len(), 4);
        assert_eq!(q.from.text, "Contact");
        assert_eq!(q.limit, Some(10));
        assert_eq!(q.offset, Some(5));
        assert!(q.order[0].desc && !q.order[0].nulls_last);
        assert!(!q.order[1].desc && !q.order[1].nulls_last);
        let Some(Cond::And(parts)) = q.filter else { panic!() };
        assert_eq!(parts.len(), 4);
        assert!(matches!(parts[0], Cond::Or(_)));
        assert!(matches!(parts[1], Cond::Not(_)));
        let Cond::Cmp { value: Lit::DateTime(ms), .. } = &parts[2] else { panic!() };
        assert_eq!(*ms, 1_716_230_972_000);
        assert!(matches!(&parts[3], Cond::In { negated: true, values, .. } if values.len() == 2));
    }

    #[test]
    fn string_escapes() {
        let q = parse(r#"SELECT Id FROM Account WHERE Name = 'O\'Brien \\ \n \t \" x' AND Name LIKE '50\%'"#).unwrap();
        let Some(Cond::And(parts)) = q.filter else { panic!() };
        assert_eq!(
            parts[0],
            Cond::Cmp {
                field: Path { text: "Name".into(), pos: 29 },
                op: CmpOp::Eq,
                value: Lit::Str("O'Brien \\ \n \t \" x".into()),
                value_pos: 36
            }
        );
        assert!(matches!(&parts[1], Cond::Cmp { value: Lit::Str(s), .. } if s == "50\\%"));
        assert!(err(r"SELECT Id FROM Account WHERE Name = 'a\q'").contains("Illegal character sequence"));
    }

    #[test]
    fn aggregates_and_clauses() {
        let q = parse(
            "SELECT Industry, Account.Name an, COUNT(Id), SUM(Amount) total, COUNT_DISTINCT(Name) FROM Opportunity \
             WHERE CloseDate = LAST_N_DAYS:30 AND Tags__c INCLUDES ('a;b', 'c') AND AccountId IN (SELECT Id FROM Account) \
             GROUP BY Industry, Account.Name HAVING COUNT(Id) > 1 AND SUM(Amount) < 10 ORDER BY SUM(Amount) DESC LIMIT 5",
        )
        .unwrap();
        assert_eq!(q.select.len(), 5);
        assert!(matches!(&q.select[1], SelectItem::Field(p, Some(a)) if p.text == "Account.Name" && a.text == "an"));
        assert!(matches!(&q.select[2], SelectItem::Agg(Agg { func: AggFn::Count, field: Some(_), .. }, None)));
        assert!(matches!(&q.select[3], SelectItem::Agg(Agg { func: AggFn::Sum, .. }, Some(a)) if a.text == "total"));
        assert_eq!(q.group_by.len(), 2);
        assert!(matches!(&q.having, Some(Cond::And(v)) if v.len() == 2));
        assert!(q.order[0].agg.is_some() && q.order[0].desc);
        let Some(Cond::And(parts)) = &q.filter else { panic!() };
        assert!(matches!(&parts[0], Cond::Cmp { value: Lit::Relative(n, 30), .. } if n == "LAST_N_DAYS"));
        assert!(matches!(&parts[1], Cond::Includes { negated: false, values, .. } if values.len() == 2));
        assert!(matches!(&parts[2], Cond::InQuery { negated: false, .. }));
        let q = parse("SELECT FIELDS(ALL), (SELECT Id FROM Contacts) FROM Account WHERE CreatedDate = TODAY LIMIT 200").unwrap();
        assert!(matches!(q.select[0], SelectItem::Fields(FieldsKind::All, _)));
        assert!(matches!(&q.select[1], SelectItem::SubQuery(sub, _) if sub.from.text == "Contacts"));
        assert_eq!(err("SELECT Id FROM Account WHERE CreatedDate = LAST_N_DAYS"), "unexpected token: 'LAST_N_DAYS'");
        assert_eq!(err("SELECT Id FROM Account WHERE CreatedDate = LAST_N_DAYS:x"), "unexpected token: 'x'");
        assert_eq!(err("SELECT FIELDS(SOME) FROM Account"), "unexpected token: 'SOME'");
    }

    #[test]
    fn errors_say_where() {
        assert_eq!(err("SELECT Id FORM Account"), "unexpected token: 'FORM'");
        assert_eq!(parse("SELECT Id FORM Account").unwrap_err().pos, Some(10));
        assert_eq!(err("SELECT Id FROM Account WHERE A = 1 AND B = 2 OR C = 3"), "unexpected token: 'OR'");
        assert_eq!(err("SELECT FROM Account"), "unexpected token: 'FROM'");
        assert_eq!(err("SELECT Id FROM Account LIMIT"), "unexpected token: '<EOF>'");
        assert_eq!(err("SELECT Id FROM Account WHERE Name = "), "unexpected token: '<EOF>'");
        assert!(parse("SELECT Id FROM Account WHERE (A = 1 AND B = 2) OR C = 3").is_ok());
        assert!(parse("select id from account where name != 'x' and x <> 1").is_ok());
    }
}
