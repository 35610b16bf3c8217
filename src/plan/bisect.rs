//! A request Salesforce refuses as a whole because of one record (a value it cannot parse:
//! `'tomorrow'` for a date, an object for a number) must not hold up the others nor hide
//! which record it was. The batch is halved until each refusal sits on its own record, which
//! gets the error as its result; the other records go through in the same pass. k bad
//! records among n cost at most about 2·k·log2(n) extra calls; a clean batch costs nothing.
//!
//! Refusals about the request itself — the object or a field does not exist, the session,
//! the org's limits — are the same for every record: they stay one error of the whole
//! request (the mapping's, or the connection's), never bisected.

use salesforce::{Error, RecordError, SaveResult};

/// Codes Salesforce answers a whole request with that say nothing about one record.
const ABOUT_THE_REQUEST: &[&str] = &[
    "INVALID_TYPE",
    "INVALID_FIELD",
    "NOT_FOUND",
    "MALFORMED_QUERY",
    "INVALID_SESSION_ID",
    "API_DISABLED_FOR_ORG",
    "REQUEST_LIMIT_EXCEEDED",
    "INVALID_OPERATION_WITH_EXPIRED_PASSWORD",
];

/// Whether a whole-request failure may be one record's doing (and worth splitting).
pub fn about_a_record(e: &Error) -> bool {
    matches!(e, Error::Api { status: 400, .. }) && !ABOUT_THE_REQUEST.contains(&e.code().as_str())
}

/// One request for a batch: a result per item, or the failure of the whole request.
pub type Results = Result<Vec<SaveResult>, Error>;

/// Sends `items` with `call`, halving a refused batch as described above. One result per
/// item, in order; Err only for a failure of the whole request that is not a record's.
pub fn bisect<T>(items: &[T], call: &mut dyn FnMut(&[T]) -> Results) -> Results {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    match call(items) {
        Err(e) if about_a_record(&e) => {
            if items.len() == 1 {
                return Ok(vec![SaveResult::failed(RecordError::from_error(&e))]);
            }
            let (a, b) = items.split_at(items.len() / 2);
            let mut out = bisect(a, call)?;
            out.extend(bisect(b, call)?);
            Ok(out)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use salesforce::ApiError;

    fn refused(code: &str) -> Error {
        Error::Api {
            status: 400,
            errors: vec![ApiError::new(code, "Cannot deserialize instance of date from VALUE_STRING value tomorrow")],
        }
    }

    /// A fake Collections call: any batch holding a "bad" item is refused as a whole.
    fn call_with(calls: &mut usize) -> impl FnMut(&[&str]) -> Results + '_ {
        move |batch: &[&str]| {
            *calls += 1;
            if batch.contains(&"bad") {
                Err(refused("JSON_PARSER_ERROR"))
            } else {
                Ok(batch.iter().map(|i| SaveResult { id: Some(i.to_string()), success: true, ..Default::default() }).collect())
            }
        }
    }

    #[test]
    fn the_bad_records_get_the_error_and_the_others_go_through() {
        let items = ["a", "bad", "c", "d", "e", "bad", "g"];
        let mut calls = 0;
        let out = bisect(&items, &mut call_with(&mut calls)).unwrap();
        assert_eq!(out.len(), items.len());
        for (item, r) in items.iter().zip(&out) {
            if *item == "bad" {
                assert!(!r.success);
                assert_eq!(r.errors[0].status_code, "JSON_PARSER_ERROR");
                assert!(r.errors[0].message.contains("tomorrow"));
            } else {
                assert_eq!(r.id.as_deref(), Some(*item), "in order, sent");
            }
        }
        assert!(calls <= 1 + 2 * 2 * 3, "{calls} calls");
    }

    #[test]
    fn a_clean_batch_is_one_call() {
        let mut calls = 0;
        assert_eq!(bisect(&["a", "b"], &mut call_with(&mut calls)).unwrap().len(), 2);
        assert_eq!(calls, 1);
    }

    #[test]
    fn refusals_of_the_request_itself_are_not_split() {
        let mut calls = 0;
        let mut call = |_: &[&str]| -> Results {
            calls += 1;
            Err(refused("INVALID_FIELD"))
        };
        assert!(bisect(&["a", "b", "c"], &mut call).is_err());
        assert_eq!(calls, 1);
        assert!(!about_a_record(&Error::Transport("reset".into())));
        assert!(!about_a_record(&Error::Api { status: 503, errors: vec![] }));
        assert!(about_a_record(&refused("JSON_PARSER_ERROR")));
    }
}
