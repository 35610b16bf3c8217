//! Recursive-descent SOQL parser for the supported subset (see README.md).

use super::lexer::{lex, Tok, Token};
use super::SoqlError;

#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Date(i32),
    DateTime(i64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    pub text: String,
    pub pos: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SelectItem {
    Field(Path),
    /// `COUNT()`.
    CountAll(usize),
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
    Cmp { field: Path, op: CmpOp, value: Lit, value_pos: usize },
    In { field: Path, negated: bool, values: Vec<Lit>, value_pos: usize },
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderItem {
    pub field: Path,
    pub desc: bool,
    pub nulls_last: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub select: Vec<SelectItem>,
    pub from: Path,
    pub filter: Option<Cond>,
    pub order: Vec<OrderItem>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
}

struct Parser {
    toks: Vec<Token>,
    i: usize,
}

const RESERVED: &[&str] = &[
    "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY", "LIMIT", "OFFSET", "NULL", "TRUE",
    "FALSE", "ASC", "DESC", "NULLS", "GROUP", "HAVING", "WITH", "FOR", "USING", "INCLUDES", "EXCLUDES",
];

fn unexpected(t: &Token) -> SoqlError {
    SoqlError::malformed(format!("unexpected token: '{}'", t.text), t.pos)
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.toks[self.i]
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
    /// A field path: an identifier that isn't a reserved word.
    fn path(&mut self) -> Result<Path, SoqlError> {
        let t = self.peek().clone();
        match &t.tok {
            Tok::Ident(s) if !RESERVED.iter().any(|r| r.eq_ignore_ascii_case(s)) => {
                self.next();
                Ok(Path { text: s.clone(), pos: t.pos })
            }
            _ => Err(unexpected(&t)),
        }
    }

    fn query(&mut self) -> Result<Query, SoqlError> {
        self.expect_kw("SELECT")?;
        let mut select = vec![];
        loop {
            if self.peek().is_kw("COUNT") && self.toks.get(self.i + 1).map(|t| &t.tok) == Some(&Tok::LParen) {
                let pos = self.next().pos;
                self.next();
                if self.peek().tok != Tok::RParen {
                    // COUNT(field) is an aggregate query: not in the supported subset.
                    return Err(SoqlError::malformed("COUNT(field) aggregate queries are not supported by the emulator", self.peek().pos));
                }
                self.next();
                select.push(SelectItem::CountAll(pos));
            } else if self.peek().tok == Tok::LParen {
                return Err(SoqlError::malformed("relationship subqueries are not supported by the emulator", self.peek().pos));
            } else {
                select.push(SelectItem::Field(self.path()?));
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
        let mut order = vec![];
        if self.eat_kw("ORDER") {
            self.expect_kw("BY")?;
            loop {
                let field = self.path()?;
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
                order.push(OrderItem { field, desc, nulls_last });
                if self.peek().tok == Tok::Comma {
                    self.next();
                } else {
                    break;
                }
            }
        }
        let mut limit = None;
        let mut offset = None;
        if self.eat_kw("LIMIT") {
            limit = Some(self.count()?);
        }
        if self.eat_kw("OFFSET") {
            offset = Some(self.count()?);
        }
        if self.peek().tok != Tok::Eof {
            return Err(unexpected(self.peek()));
        }
        Ok(Query { select, from, filter, order, limit, offset })
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
        let field = self.path()?;
        let negated = self.eat_kw("NOT");
        if self.peek().is_kw("IN") {
            self.next();
            let open = self.expect(Tok::LParen)?;
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
        let t = self.next();
        let op = match &t.tok {
            Tok::Op("=") => CmpOp::Eq,
            Tok::Op("!=") => CmpOp::Ne,
            Tok::Op("<") => CmpOp::Lt,
            Tok::Op("<=") => CmpOp::Le,
            Tok::Op(">") => CmpOp::Gt,
            Tok::Op(">=") => CmpOp::Ge,
            Tok::Ident(s) if s.eq_ignore_ascii_case("LIKE") => CmpOp::Like,
            _ => return Err(unexpected(&t)),
        };
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
            _ => return Err(unexpected(&t)),
        })
    }
}

pub fn parse(q: &str) -> Result<Query, SoqlError> {
    let toks = lex(q)?;
    Parser { toks, i: 0 }.query()
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
        assert_eq!(parts[0], Cond::Cmp {
            field: Path { text: "Name".into(), pos: 29 },
            op: CmpOp::Eq,
            value: Lit::Str("O'Brien \\ \n \t \" x".into()),
            value_pos: 36
        });
        assert!(matches!(&parts[1], Cond::Cmp { value: Lit::Str(s), .. } if s == "50\\%"));
        assert!(err(r"SELECT Id FROM Account WHERE Name = 'a\q'").contains("Illegal character sequence"));
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
