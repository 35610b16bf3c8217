//! Before a push creates records for a mapping with `match`: rows without a Salesforce Id
//! are looked up by their natural key (one query per 200 keys, through `clients::call`),
//! and a row that matches exactly one record of its own is linked to it (an update by Id
//! that writes the external ID) instead of creating a duplicate. An ambiguous match is the
//! row's error (parked: nothing is sent until the data is fixed and it is retried).

use super::{Outcome, Result_};
use crate::error::Result;
use crate::plan::coalesce::{Change, Write};
use crate::plan::matching::{self, Decision, AMBIGUOUS};
use crate::plan::options::Conflict;
use crate::sync::clients::{self, Call, Step};
use crate::sync::{matching as lookup, Ctx, Mapping};
use serde_json::Value;
use std::collections::HashMap;

/// The changes to send, and the results of those held back (ambiguous, or deferred when
/// the lookup could not be made).
pub(super) fn link(ctx: Ctx, m: &Mapping, ready: Vec<Change>) -> Result<(Vec<Change>, Vec<Result_>)> {
    let (mut candidates, mut send): (Vec<Change>, Vec<Change>) =
        ready.into_iter().partition(|c| matches!(&c.write, Write::Upsert(p) if c.sfid.is_none() && lookup::row_key(m, p).is_some()));
    if candidates.is_empty() {
        return Ok((send, Vec::new()));
    }
    let rows: Vec<&serde_json::Map<String, Value>> =
        candidates.iter().filter_map(|c| if let Write::Upsert(p) = &c.write { Some(p) } else { None }).collect();
    let found = match clients::call(ctx, &m.connection, Step::new(m.id, "push"), || {
        lookup::lookup(&*clients::client(ctx, &m.connection)?, m, &rows).map(|(f, _)| f)
    }) {
        Call::Done(f) => f,
        // Not looked up, not sent: a create now could be the duplicate we are avoiding.
        _ => {
            let held = candidates.into_iter().map(|c| Result_ { change: c, operation: "", outcome: Outcome::Deferred }).collect();
            return Ok((send, held));
        }
    };
    let keyed: Vec<(String, Option<String>)> =
        candidates.iter().map(|c| (c.pk.clone(), if let Write::Upsert(p) = &c.write { lookup::row_key(m, p) } else { None })).collect();
    let keys: Vec<String> = keyed.iter().filter_map(|(_, k)| k.clone()).collect();
    let pks: Vec<String> = keyed.iter().map(|(pk, _)| pk.clone()).collect();
    let (taken, others) = ctx.tx(|| Ok((lookup::taken(m, &found)?, lookup::others(m, &keys, &pks)?)))?;
    let decisions: HashMap<String, Decision> =
        matching::decide(&keyed, &found, &others, &taken, |pk| m.external_value(pk), &lookup::label(m)).into_iter().collect();
    let mut held = Vec::new();
    for mut c in candidates.drain(..) {
        match decisions.get(&c.pk) {
            Some(Decision::Link(id)) => {
                c.sfid = Some(id.clone());
                if let Write::Upsert(p) = &mut c.write {
                    // Salesforce's values win: only the external ID is written (the pull
                    // brings the record's values); otherwise the row's values too.
                    if m.options.conflict == Conflict::SalesforceWins {
                        p.clear();
                    }
                    // The key column in the payload makes the update write the external ID.
                    p.insert(m.pk_column.clone(), Value::String(c.pk.clone()));
                }
                send.push(c);
            }
            Some(Decision::Ambiguous { message, .. }) => held.push(Result_ {
                change: c,
                operation: "match",
                outcome: Outcome::Rejected {
                    code: AMBIGUOUS.into(),
                    message: message.clone(),
                    fields: m.match_keys.iter().map(|k| k.field.clone()).collect(),
                    transient: false,
                },
            }),
            _ => send.push(c),
        }
    }
    Ok((send, held))
}
