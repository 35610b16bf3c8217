//! A mapping's `filter`: one SOQL condition, as it would follow WHERE, checked here before it
//! is stored or sent. Every query the sync builds wraps it in parentheses (`WHERE (filter)`,
//! `NOT (filter)`), so a filter that closes them — `Name = 'x') OR (Name != ''` — would change
//! the query's meaning, and one that adds a clause (`… LIMIT 5`) would break every poll. The
//! parser accepts exactly one balanced condition expression:
//!
//! ```text
//! condition  := and-list | or-list            (SOQL needs parentheses to mix AND and OR)
//! term       := NOT term | '(' condition ')' | field comparison
//! field      := Name | Owner.Name | CALENDAR_YEAR(CreatedDate)
//! comparison := (= | != | <> | < | <= | > | >=) value | LIKE value
//!             | [NOT] IN '(' values | SELECT field FROM object [WHERE condition] ')'
//!             | INCLUDES '(' values ')' | EXCLUDES '(' values ')'
//! value      := 'string' | number | date | datetime | TRUE | FALSE | NULL | TODAY | LAST_N_DAYS:7 …
//! ```
//!
//! Errors name what is wrong and the 1-based character position. With the object's fields
//! known (`Known`), a field that does not exist is refused too; a semi-join's inner fields
//! belong to another object and are left to Salesforce.

/// What the filter's object has, from describe (names compared case-insensitively).
pub struct Known<'a> {
    pub object: &'a str,
    pub fields: &'a [&'a str],
    /// Relationship names (`Owner` for OwnerId): the first step of a path like `Owner.Name`.
    pub relationships: &'a [&'a str],
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str,
    Num,
    Date,
    Op(&'static str),
    Open,
    Close,
    Comma,
    Dot,
    Colon,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    /// 1-based character position of its first character.
    at: usize,
    text: String,
}

const ONE_CONDITION: &str =
    "a filter is one condition, as it would follow WHERE: balanced parentheses and no further clause (ORDER BY, LIMIT …)";

/// Checks `filter` (see the module docs). `known`: the object's fields, when describe is at hand.
pub fn check(filter: &str, known: Option<&Known>) -> Result<(), String> {
    let tokens = lex(filter)?;
    if tokens.is_empty() {
        return Err("filter: empty; pass NULL for no filter".into());
    }
    let mut p = Parser { tokens, pos: 0, end: filter.chars().count() + 1 };
    p.condition(known)?;
    match p.peek() {
        None => Ok(()),
        Some(t) => Err(format!("filter: unexpected {} at position {}; {ONE_CONDITION}", t.describe(), t.at)),
    }
}

impl Token {
    fn describe(&self) -> String {
        format!("\"{}\"", self.text)
    }
    fn keyword(&self, k: &str) -> bool {
        matches!(&self.tok, Tok::Ident(s) if s.eq_ignore_ascii_case(k))
    }
}

fn lex(s: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let at = i + 1;
        let start = i;
        let tok = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '\'' => {
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(format!("filter: the string starting at position {at} is not closed")),
                        Some('\\') => i += 2,
                        Some('\'') => break,
                        Some(_) => i += 1,
                    }
                }
                i += 1;
                Tok::Str
            }
            '(' | ')' | ',' | '.' | ':' | '=' => {
                i += 1;
                match c {
                    '(' => Tok::Open,
                    ')' => Tok::Close,
                    ',' => Tok::Comma,
                    '.' => Tok::Dot,
                    ':' => Tok::Colon,
                    _ => Tok::Op("="),
                }
            }
            '!' if chars.get(i + 1) == Some(&'=') => {
                i += 2;
                Tok::Op("!=")
            }
            '<' | '>' => {
                let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
                let op = match two.as_str() {
                    "<=" => "<=",
                    ">=" => ">=",
                    "<>" => "<>",
                    _ if c == '<' => "<",
                    _ => ">",
                };
                i += op.len();
                Tok::Op(op)
            }
            c if c.is_ascii_digit() || (c == '-' || c == '+') && chars.get(i + 1).is_some_and(char::is_ascii_digit) => {
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '.' | ':' | '-' | '+')) {
                    // A date or datetime runs on (2024-05-20T10:00:00.000+02:00); a number stops
                    // at anything else.
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                if is_number(&text) {
                    Tok::Num
                } else if is_date(&text) {
                    Tok::Date
                } else {
                    return Err(format!("filter: \"{text}\" at position {at} is neither a number nor a date (YYYY-MM-DD) or datetime"));
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                Tok::Ident(chars[start..i].iter().collect())
            }
            other => return Err(format!("filter: unexpected character '{other}' at position {at}; {ONE_CONDITION}")),
        };
        out.push(Token { tok, at, text: chars[start..i].iter().collect() });
    }
    Ok(out)
}

fn is_number(s: &str) -> bool {
    let digits = s.trim_start_matches(['-', '+']);
    let mut parts = digits.splitn(2, '.');
    let int = parts.next().unwrap_or_default();
    let frac = parts.next();
    !int.is_empty()
        && int.chars().all(|c| c.is_ascii_digit())
        && frac.is_none_or(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_digit()))
}

/// YYYY-MM-DD, or a datetime YYYY-MM-DDThh:mm:ss[.fff](Z|±hh:mm) as SOQL writes them.
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b.get(r.clone()).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let date = b.len() >= 10 && digits(0..4) && b[4] == b'-' && digits(5..7) && b[7] == b'-' && digits(8..10);
    if !date || b.len() == 10 {
        return date;
    }
    let rest = &s[10..];
    let Some(time) = rest.strip_prefix('T') else { return false };
    let (clock, zone) = match time.find(['Z', '+', '-']) {
        Some(z) => time.split_at(z),
        None => return false,
    };
    let clock = clock.split('.').next().unwrap_or_default();
    let hms = clock.len() == 8 && clock.as_bytes()[2] == b':' && clock.as_bytes()[5] == b':';
    let zone_ok = zone == "Z" || (zone.len() == 6 && zone.as_bytes()[3] == b':');
    hms && zone_ok
}

/// Salesforce's relative date literals; those with `N` take `:n`.
#[rustfmt::skip]
const DATE_LITERALS: &[&str] = &[
    "YESTERDAY", "TODAY", "TOMORROW", "LAST_WEEK", "THIS_WEEK", "NEXT_WEEK", "LAST_MONTH", "THIS_MONTH", "NEXT_MONTH",
    "LAST_90_DAYS", "NEXT_90_DAYS", "LAST_N_DAYS", "NEXT_N_DAYS", "N_DAYS_AGO", "NEXT_N_WEEKS", "LAST_N_WEEKS", "N_WEEKS_AGO",
    "NEXT_N_MONTHS", "LAST_N_MONTHS", "N_MONTHS_AGO", "THIS_QUARTER", "LAST_QUARTER", "NEXT_QUARTER", "NEXT_N_QUARTERS",
    "LAST_N_QUARTERS", "N_QUARTERS_AGO", "THIS_YEAR", "LAST_YEAR", "NEXT_YEAR", "NEXT_N_YEARS", "LAST_N_YEARS", "N_YEARS_AGO",
    "THIS_FISCAL_QUARTER", "LAST_FISCAL_QUARTER", "NEXT_FISCAL_QUARTER", "NEXT_N_FISCAL_QUARTERS", "LAST_N_FISCAL_QUARTERS",
    "N_FISCAL_QUARTERS_AGO", "THIS_FISCAL_YEAR", "LAST_FISCAL_YEAR", "NEXT_FISCAL_YEAR", "NEXT_N_FISCAL_YEARS",
    "LAST_N_FISCAL_YEARS", "N_FISCAL_YEARS_AGO",
];

const RESERVED: &[&str] = &["AND", "OR", "NOT", "IN", "LIKE", "INCLUDES", "EXCLUDES", "SELECT", "FROM", "WHERE", "NULL", "TRUE", "FALSE"];

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    /// Position just past the filter, for "ends too soon".
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self, wanted: &str) -> Result<Token, String> {
        let t = self
            .tokens
            .get(self.pos)
            .cloned()
            .ok_or_else(|| format!("filter: ends at position {} where {wanted} was expected", self.end))?;
        self.pos += 1;
        Ok(t)
    }

    fn unexpected(t: &Token, wanted: &str) -> String {
        format!("filter: unexpected {} at position {} where {wanted} was expected", t.describe(), t.at)
    }

    fn expect(&mut self, tok: Tok, wanted: &str) -> Result<(), String> {
        let t = self.next(wanted)?;
        if t.tok == tok {
            Ok(())
        } else {
            Err(Self::unexpected(&t, wanted))
        }
    }

    fn eat_keyword(&mut self, k: &str) -> bool {
        if self.peek().is_some_and(|t| t.keyword(k)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Terms joined by AND, or by OR, never both at one level.
    fn condition(&mut self, known: Option<&Known>) -> Result<(), String> {
        self.term(known)?;
        let mut joiner: Option<&str> = None;
        while let Some(t) = self.peek() {
            let word = if t.keyword("AND") {
                "AND"
            } else if t.keyword("OR") {
                "OR"
            } else {
                break;
            };
            if joiner.is_some_and(|j| j != word) {
                return Err(format!("filter: mixing AND and OR needs parentheses (position {}), e.g. (A AND B) OR C", t.at));
            }
            joiner = Some(word);
            self.pos += 1;
            self.term(known)?;
        }
        Ok(())
    }

    fn term(&mut self, known: Option<&Known>) -> Result<(), String> {
        if self.eat_keyword("NOT") {
            return self.term(known);
        }
        if self.peek().is_some_and(|t| t.tok == Tok::Open) {
            self.pos += 1;
            self.condition(known)?;
            return self.expect(Tok::Close, "\")\"");
        }
        self.field(known)?;
        self.comparison()
    }

    /// A field, a relationship path, or a date function of one (CALENDAR_YEAR(CreatedDate)).
    fn field(&mut self, known: Option<&Known>) -> Result<(), String> {
        let first = self.next("a field")?;
        let Tok::Ident(name) = &first.tok else { return Err(Self::unexpected(&first, "a field")) };
        if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name)) {
            return Err(Self::unexpected(&first, "a field"));
        }
        if self.peek().is_some_and(|t| t.tok == Tok::Open) {
            self.pos += 1;
            self.field(known)?;
            return self.expect(Tok::Close, "\")\" after the function's field");
        }
        let mut path = vec![first.clone()];
        while self.peek().is_some_and(|t| t.tok == Tok::Dot) {
            self.pos += 1;
            let part = self.next("a field after \".\"")?;
            if !matches!(part.tok, Tok::Ident(_)) {
                return Err(Self::unexpected(&part, "a field after \".\""));
            }
            path.push(part);
        }
        if let Some(k) = known {
            let head = &path[0].text;
            let (list, what) = if path.len() == 1 { (k.fields, "field") } else { (k.relationships, "relationship") };
            if !list.iter().any(|f| f.eq_ignore_ascii_case(head)) {
                return Err(format!("filter: {} has no {what} \"{head}\" (position {})", k.object, path[0].at));
            }
        }
        Ok(())
    }

    fn comparison(&mut self) -> Result<(), String> {
        const WANTED: &str = "an operator (=, !=, <, <=, >, >=, LIKE, IN, NOT IN, INCLUDES, EXCLUDES)";
        let t = self.next(WANTED)?;
        match &t.tok {
            Tok::Op(_) => self.value(),
            Tok::Ident(_) if t.keyword("LIKE") => self.value(),
            Tok::Ident(_) if t.keyword("IN") => self.set(true),
            Tok::Ident(_) if t.keyword("NOT") => {
                let inn = self.next("IN after NOT")?;
                if !inn.keyword("IN") {
                    return Err(Self::unexpected(&inn, "IN after NOT"));
                }
                self.set(true)
            }
            Tok::Ident(_) if t.keyword("INCLUDES") || t.keyword("EXCLUDES") => self.set(false),
            _ => Err(Self::unexpected(&t, WANTED)),
        }
    }

    /// `( values )`, or with `subquery` a semi-join `( SELECT field FROM object [WHERE …] )`.
    fn set(&mut self, subquery: bool) -> Result<(), String> {
        self.expect(Tok::Open, "\"(\"")?;
        if subquery && self.eat_keyword("SELECT") {
            // The inner query is on another object: its fields are Salesforce's to check.
            self.field(None)?;
            let from = self.next("FROM")?;
            if !from.keyword("FROM") {
                return Err(Self::unexpected(&from, "FROM"));
            }
            let object = self.next("an object")?;
            if !matches!(object.tok, Tok::Ident(_)) {
                return Err(Self::unexpected(&object, "an object"));
            }
            if self.eat_keyword("WHERE") {
                self.condition(None)?;
            }
            return self.expect(Tok::Close, "\")\" closing the subquery");
        }
        loop {
            self.value()?;
            let t = self.next("\",\" or \")\"")?;
            match t.tok {
                Tok::Comma => continue,
                Tok::Close => return Ok(()),
                _ => return Err(Self::unexpected(&t, "\",\" or \")\"")),
            }
        }
    }

    fn value(&mut self) -> Result<(), String> {
        const WANTED: &str = "a value ('text', a number, a date, TRUE, FALSE, NULL or a date literal such as TODAY)";
        let t = self.next(WANTED)?;
        match &t.tok {
            Tok::Str | Tok::Num | Tok::Date => Ok(()),
            Tok::Ident(w) if ["TRUE", "FALSE", "NULL"].iter().any(|k| k.eq_ignore_ascii_case(w)) => Ok(()),
            Tok::Ident(w) => {
                let upper = w.to_ascii_uppercase();
                if !DATE_LITERALS.contains(&upper.as_str()) {
                    return Err(Self::unexpected(&t, WANTED));
                }
                if upper.starts_with("N_") || upper.contains("_N_") {
                    self.expect(Tok::Colon, &format!("\":\" and a number after {upper}"))?;
                    let n = self.next("a number")?;
                    if n.tok != Tok::Num || n.text.contains(['.', '-', '+']) {
                        return Err(Self::unexpected(&n, &format!("a whole number after {upper}:")));
                    }
                }
                Ok(())
            }
            _ => Err(Self::unexpected(&t, WANTED)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: Known = Known {
        object: "Account",
        fields: &["Id", "Name", "Industry", "AnnualRevenue", "CreatedDate", "OwnerId", "Type", "Tags__c", "IsDeleted"],
        relationships: &["Owner", "Parent"],
    };

    fn ok(f: &str) {
        assert_eq!(check(f, Some(&ACCOUNT)), Ok(()), "{f}");
    }

    fn err(f: &str) -> String {
        check(f, Some(&ACCOUNT)).expect_err(f)
    }

    #[test]
    fn the_conditions_users_write_are_accepted() {
        ok("Industry = 'Energy'");
        ok("industry = 'Energy'");
        ok("Name LIKE 'Acme%' AND AnnualRevenue >= 1000000.50 AND IsDeleted = false");
        ok("(Industry = 'Energy' OR Industry = 'Banking') AND Type != null");
        ok("NOT Industry IN ('Energy', 'Banking')");
        ok("Industry NOT IN ('Energy')");
        ok("CreatedDate > 2024-01-01T00:00:00Z AND CreatedDate < 2025-01-01T00:00:00.000+02:00");
        ok("CreatedDate = LAST_N_DAYS:30 OR CreatedDate = TODAY");
        ok("CALENDAR_YEAR(CreatedDate) = 2024");
        ok("Owner.Name = 'Ada' AND AnnualRevenue > -5");
        ok("Tags__c INCLUDES ('a;b', 'c')");
        ok("Id IN (SELECT AccountId FROM Contact WHERE Email LIKE '%@example.com')");
        ok("Name = 'O\\'Brien (Ltd)'");
    }

    #[test]
    fn a_filter_cannot_leave_its_parentheses() {
        let e = err("Name = 'x') OR (Name != ''");
        assert_eq!(e, format!("filter: unexpected \")\" at position 11; {ONE_CONDITION}"));
        assert!(err("Name = 'x' LIMIT 5").contains("unexpected \"LIMIT\" at position 12"));
        assert!(err("Name = 'x' ORDER BY Name").contains("\"ORDER\""));
        assert!(err("(Name = 'x'").contains("ends at position 12 where \")\" was expected"));
        assert!(err("Name = 'x'; DELETE").contains("unexpected character ';' at position 11"));
        assert!(err("Name = :bound").contains("position 8"));
    }

    #[test]
    fn malformed_conditions_are_named_with_their_position() {
        assert!(err("Name = 'x").contains("the string starting at position 8 is not closed"));
        assert!(err("Industry = 'A' AND Type = 'B' OR Name = 'C'").contains("mixing AND and OR needs parentheses (position 31)"));
        assert!(err("Name 'x'").contains("unexpected \"'x'\" at position 6 where an operator"));
        assert!(err("Name = ").contains("ends at position 8 where a value"));
        assert!(err("Name = Industry").contains("position 8 where a value"));
        assert!(err("CreatedDate = LAST_N_DAYS").contains("\":\" and a number after LAST_N_DAYS"));
        assert!(err("CreatedDate = 2024-13").contains("neither a number nor a date"));
        assert!(err("   ").contains("empty"));
    }

    #[test]
    fn fields_must_exist_on_the_object() {
        assert_eq!(err("Bogus__c = 1"), "filter: Account has no field \"Bogus__c\" (position 1)");
        assert_eq!(err("Industry = 'x' AND Manager.Name = 'y'"), "filter: Account has no relationship \"Manager\" (position 20)");
        // Without describe only the shape is checked.
        assert_eq!(check("Bogus__c = 1", None), Ok(()));
    }
}
