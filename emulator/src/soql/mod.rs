//! SOQL: lexer → parser → syntax tree (`ast`) → evaluator compiled against the schema.

pub mod ast;
pub mod dates;
pub mod eval;
pub mod lexer;
pub mod parser;

use crate::errors::ApiError;

/// A query error with the position it refers to; rendered like Salesforce's
/// `\n<query>\n   ^\nERROR at Row:1:Column:N\n<message>`.
#[derive(Debug, Clone, PartialEq)]
pub struct SoqlError {
    pub code: &'static str,
    pub message: String,
    pub pos: Option<usize>,
}

impl SoqlError {
    pub fn malformed(message: impl Into<String>, pos: usize) -> SoqlError {
        SoqlError { code: "MALFORMED_QUERY", message: message.into(), pos: Some(pos) }
    }
    pub fn at(code: &'static str, message: impl Into<String>, pos: usize) -> SoqlError {
        SoqlError { code, message: message.into(), pos: Some(pos) }
    }

    pub fn to_api(&self, query: &str) -> ApiError {
        let message = match self.pos {
            Some(pos) => {
                let pos = pos.min(query.len());
                let before = &query[..pos];
                let row = before.matches('\n').count() + 1;
                let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
                let col = query[line_start..pos].chars().count() + 1;
                let line_end = query[pos..].find('\n').map(|i| pos + i).unwrap_or(query.len());
                format!("\n{}\n{}^\nERROR at Row:{row}:Column:{col}\n{}", &query[line_start..line_end], " ".repeat(col - 1), self.message)
            }
            None => self.message.clone(),
        };
        ApiError::bad(self.code, message)
    }
}
