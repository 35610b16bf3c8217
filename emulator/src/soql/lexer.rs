//! SOQL tokens. Dotted paths (`Account.Name`) lex as one identifier; date/datetime literals are
//! recognised here because they are unquoted.

use super::SoqlError;
use crate::clock::{parse_date, parse_datetime};

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Ident(String),
    Str(String),
    Num(f64),
    Date(i32),
    DateTime(i64),
    Comma,
    LParen,
    RParen,
    Colon,
    Op(&'static str),
    Eof,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub tok: Tok,
    pub pos: usize,
    /// Source text, for error messages.
    pub text: String,
}

impl Token {
    /// Case-insensitive keyword test.
    pub fn is_kw(&self, kw: &str) -> bool {
        matches!(&self.tok, Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
    }
}

pub fn lex(q: &str) -> Result<Vec<Token>, SoqlError> {
    let b = q.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let tok = match c {
            b',' => {
                i += 1;
                Tok::Comma
            }
            b'(' => {
                i += 1;
                Tok::LParen
            }
            b')' => {
                i += 1;
                Tok::RParen
            }
            b':' => {
                i += 1;
                Tok::Colon
            }
            b'=' => {
                i += 1;
                Tok::Op("=")
            }
            b'!' if b.get(i + 1) == Some(&b'=') => {
                i += 2;
                Tok::Op("!=")
            }
            b'<' => match b.get(i + 1) {
                Some(b'=') => {
                    i += 2;
                    Tok::Op("<=")
                }
                Some(b'>') => {
                    i += 2;
                    Tok::Op("!=")
                }
                _ => {
                    i += 1;
                    Tok::Op("<")
                }
            },
            b'>' => {
                if b.get(i + 1) == Some(&b'=') {
                    i += 2;
                    Tok::Op(">=")
                } else {
                    i += 1;
                    Tok::Op(">")
                }
            }
            b'\'' => {
                let (s, end) = string(q, i)?;
                i = end;
                Tok::Str(s)
            }
            b'0'..=b'9' | b'-' | b'+' | b'.' => {
                let is_num_start = c.is_ascii_digit() || b.get(i + 1).is_some_and(|n| n.is_ascii_digit() || *n == b'.');
                if !is_num_start {
                    return Err(SoqlError::malformed(format!("unexpected token: '{}'", c as char), i));
                }
                // Date/datetime literal: 4 digits then '-'.
                if b.len() >= i + 10 && b[i..i + 4].iter().all(u8::is_ascii_digit) && b[i + 4] == b'-' {
                    let end = q[i..]
                        .find(|ch: char| !(ch.is_ascii_alphanumeric() || matches!(ch, '-' | ':' | '.' | '+')))
                        .map(|n| i + n)
                        .unwrap_or(b.len());
                    let text = &q[i..end];
                    i = end;
                    if let Some(d) = parse_date(text) {
                        Tok::Date(d)
                    } else if text.contains('T') && (text.ends_with('Z') || text.contains('+') || text[10..].contains('-')) {
                        match parse_datetime(text) {
                            Some(ms) => Tok::DateTime(ms),
                            None => {
                                return Err(SoqlError::malformed(
                                    format!("line 1:{start} no viable alternative at character '{text}'"),
                                    start,
                                ))
                            }
                        }
                    } else {
                        return Err(SoqlError::malformed(format!("unexpected token: '{text}'"), start));
                    }
                } else {
                    i += 1;
                    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                        i += 1;
                    }
                    let text = &q[start..i];
                    match text.parse::<f64>() {
                        Ok(n) => Tok::Num(n),
                        Err(_) => return Err(SoqlError::malformed(format!("unexpected token: '{text}'"), start)),
                    }
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'.') {
                    i += 1;
                }
                Tok::Ident(q[start..i].to_string())
            }
            _ => {
                let ch = q[i..].chars().next().unwrap_or('?');
                return Err(SoqlError::malformed(format!("unexpected token: '{ch}'"), i));
            }
        };
        out.push(Token { tok, pos: start, text: q[start..i].to_string() });
    }
    out.push(Token { tok: Tok::Eof, pos: q.len(), text: "<EOF>".into() });
    Ok(out)
}

/// A quoted string starting at `start`; returns the unescaped value and the end offset.
/// `\%` and `\_` stay escaped: they only mean something to LIKE.
fn string(q: &str, start: usize) -> Result<(String, usize), SoqlError> {
    let mut out = String::new();
    let mut chars = q[start + 1..].char_indices();
    while let Some((off, ch)) = chars.next() {
        match ch {
            '\'' => return Ok((out, start + 1 + off + 1)),
            '\\' => {
                let (_, e) = chars.next().ok_or_else(|| SoqlError::malformed("unterminated string literal", start))?;
                match e {
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    '\'' | '"' | '\\' => out.push(e),
                    '%' | '_' => {
                        out.push('\\');
                        out.push(e);
                    }
                    _ => {
                        return Err(SoqlError::malformed(
                            format!("Invalid string literal '{}'. Illegal character sequence '\\{e}' in string literal.", &q[start + 1..]),
                            start,
                        ))
                    }
                }
            }
            c => out.push(c),
        }
    }
    Err(SoqlError::malformed("unterminated string literal", start))
}
