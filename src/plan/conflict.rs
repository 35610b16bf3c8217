//! Conflict resolution: what the pull does with a Salesforce change of a record that also
//! has a local change waiting in the outbox.

use super::options::Conflict;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Winner {
    Salesforce,
    Postgres,
}

impl Winner {
    pub fn as_str(self) -> &'static str {
        match self {
            Winner::Salesforce => "salesforce",
            Winner::Postgres => "postgres",
        }
    }
}

/// One record seen by the pull while a local change of it is pending.
#[derive(Debug, Clone)]
pub struct Both<'a> {
    /// Mapped columns whose Salesforce value differs from the local row's.
    pub differing: &'a [String],
    /// Columns the pending local change touched; None: all of them (a pending insert).
    pub pending: Option<&'a [String]>,
    /// Columns whose Salesforce value is no change of Salesforce's own ([`echo`]): still a
    /// value the row had before the local change, or one we sent. No conflict: the local
    /// value stays and goes out.
    pub salesforce_kept: &'a [String],
    /// Salesforce changed the record since the last sync: not a re-read of a version the
    /// pull already saw, and not our own push coming back.
    pub salesforce_changed: bool,
    /// Salesforce's LastModifiedDate and the capture time of the newest pending local
    /// change, in microseconds since the epoch (for `last_modified_wins`).
    pub salesforce_modified: Option<i64>,
    pub postgres_modified: Option<i64>,
}

/// What we know of one column's values on our side, to tell Salesforce's own change of it
/// from an echo of ours.
#[derive(Debug, Clone, Copy, Default)]
pub struct Known<'a> {
    /// The values (text form) the row held before each pending local change of the column:
    /// the chain of values Salesforce may still hold or have been sent.
    pub bases: &'a [Value],
    /// Values of the column we sent for the record (jsonb form), settled within the archive's
    /// retention: a late event, a re-read or a retried push may still carry one.
    pub sent: &'a [Value],
}

/// Whether Salesforce's value of a column is no change of Salesforce's own: it is a value
/// the row held before a pending local change (`remote_text`, text form), or one we sent
/// (`remote`, jsonb form), or the change event says the field did not change
/// (`in_changed_fields` false). Anything else is a real Salesforce change of the column.
pub fn echo(known: Known, remote_text: &Value, remote: &Value, in_changed_fields: Option<bool>) -> bool {
    in_changed_fields == Some(false) || known.bases.contains(remote_text) || known.sent.iter().any(|s| super::convert::same_json(s, remote))
}

/// What to do with the record.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decision {
    /// Columns to set to Salesforce's values.
    pub take_salesforce: Vec<String>,
    /// Columns to drop from the pending local change (so the push doesn't send them).
    pub drop_local: Vec<String>,
    /// Set when both sides changed the same columns: who won, and those columns.
    pub conflict: Option<(Winner, Vec<String>)>,
}

/// Columns only Salesforce changed always take Salesforce's values; columns only Postgres
/// changed keep the local value. Columns both sides changed are a conflict when Salesforce really changed the record since the last sync;
/// the policy picks the winner (`last_modified_wins`: the later change, Salesforce on a tie
/// or when a time is unknown). When Salesforce wins, its values are applied and the columns
/// leave the pending local change; when Postgres wins, the local values stay and the push
/// sends them. A re-read or our own echo is no conflict: the local change simply goes out.
pub fn decide(policy: Conflict, b: &Both) -> Decision {
    let touched = |c: &String| b.pending.is_none_or(|p| p.contains(c));
    let (touched, untouched): (Vec<String>, Vec<String>) = b.differing.iter().cloned().partition(touched);
    let clashing: Vec<String> = touched.into_iter().filter(|c| !b.salesforce_kept.contains(c)).collect();
    let mut d = Decision { take_salesforce: untouched, ..Default::default() };
    if clashing.is_empty() || !b.salesforce_changed {
        return d;
    }
    let winner = match policy {
        Conflict::SalesforceWins => Winner::Salesforce,
        Conflict::PostgresWins => Winner::Postgres,
        Conflict::LastModifiedWins => match (b.salesforce_modified, b.postgres_modified) {
            (Some(sf), Some(pg)) if pg > sf => Winner::Postgres,
            _ => Winner::Salesforce,
        },
    };
    if winner == Winner::Salesforce {
        d.take_salesforce.extend(clashing.iter().cloned());
        d.drop_local = clashing.clone();
    }
    d.conflict = Some((winner, clashing));
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cols(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn both<'a>(differing: &'a [String], pending: Option<&'a [String]>) -> Both<'a> {
        Both {
            differing,
            pending,
            salesforce_kept: &[],
            salesforce_changed: true,
            salesforce_modified: Some(2_000),
            postgres_modified: Some(1_000),
        }
    }

    #[test]
    fn a_field_the_change_event_did_not_change_is_no_salesforce_change() {
        // Salesforce's value is neither a value of the local chain nor one we sent.
        let remote = json!("Old name");
        assert!(!echo(Known::default(), &remote, &remote, None), "a pulled record: Salesforce's change");
        assert!(!echo(Known::default(), &remote, &remote, Some(true)), "listed in changedFields");
        assert!(echo(Known::default(), &remote, &remote, Some(false)), "not in changedFields");
        let name = cols(&["name"]);
        let b = Both { salesforce_kept: &name, ..both(&name, Some(&name)) };
        assert_eq!(decide(Conflict::SalesforceWins, &b), Decision::default(), "the local value stays and goes out");
    }

    #[test]
    fn a_number_we_sent_is_recognised_in_any_spelling() {
        let n = |t: &str| -> Value { serde_json::from_str(t).unwrap() };
        let sent = [n("5.00"), n("1234567890123456.78")];
        let known = Known { bases: &[], sent: &sent };
        assert!(echo(known, &json!("5.0"), &n("5.0"), None));
        assert!(echo(known, &json!("1234567890123456.78"), &n("1234567890123456.780"), None));
        assert!(!echo(known, &json!("1234567890123456.8"), &n("1234567890123456.8"), None));
    }

    #[test]
    fn salesforce_wins_takes_its_values_and_drops_them_from_the_local_change() {
        let (diff, pend) = (cols(&["email", "phone"]), cols(&["email"]));
        let d = decide(Conflict::SalesforceWins, &both(&diff, Some(&pend)));
        assert_eq!(d.take_salesforce, cols(&["phone", "email"]));
        assert_eq!(d.drop_local, cols(&["email"]));
        assert_eq!(d.conflict, Some((Winner::Salesforce, cols(&["email"]))));
    }

    #[test]
    fn postgres_wins_keeps_the_local_columns_but_takes_the_others() {
        let (diff, pend) = (cols(&["email", "phone"]), cols(&["email"]));
        let d = decide(Conflict::PostgresWins, &both(&diff, Some(&pend)));
        assert_eq!(d.take_salesforce, cols(&["phone"]), "only Salesforce changed phone");
        assert!(d.drop_local.is_empty());
        assert_eq!(d.conflict, Some((Winner::Postgres, cols(&["email"]))));
    }

    #[test]
    fn last_modified_wins_compares_times() {
        let (diff, pend) = (cols(&["email"]), cols(&["email"]));
        let mut b = both(&diff, Some(&pend));
        assert_eq!(decide(Conflict::LastModifiedWins, &b).conflict.unwrap().0, Winner::Salesforce, "Salesforce later");
        b.postgres_modified = Some(3_000);
        let d = decide(Conflict::LastModifiedWins, &b);
        assert_eq!(d.conflict.unwrap().0, Winner::Postgres, "Postgres later");
        assert!(d.take_salesforce.is_empty() && d.drop_local.is_empty());
        b.postgres_modified = Some(2_000);
        assert_eq!(decide(Conflict::LastModifiedWins, &b).conflict.unwrap().0, Winner::Salesforce, "a tie goes to Salesforce");
        b.salesforce_modified = None;
        assert_eq!(decide(Conflict::LastModifiedWins, &b).conflict.unwrap().0, Winner::Salesforce, "unknown time: the default side");
    }

    #[test]
    fn a_column_salesforce_still_has_at_its_old_value_keeps_the_local_change() {
        // Both changed email; only Postgres changed first_name (Salesforce has its old value).
        let (diff, pend, kept) = (cols(&["email", "first_name"]), cols(&["email", "first_name"]), cols(&["first_name"]));
        let mut b = both(&diff, Some(&pend));
        b.salesforce_kept = &kept;
        let d = decide(Conflict::SalesforceWins, &b);
        assert_eq!(d.take_salesforce, cols(&["email"]));
        assert_eq!(d.drop_local, cols(&["email"]));
        assert_eq!(d.conflict, Some((Winner::Salesforce, cols(&["email"]))));
        // Nothing but such columns: no conflict at all.
        let only = cols(&["first_name"]);
        b.differing = &only;
        assert_eq!(decide(Conflict::SalesforceWins, &b), Decision::default());
    }

    #[test]
    fn different_columns_are_no_conflict() {
        let (diff, pend) = (cols(&["phone"]), cols(&["email"]));
        let d = decide(Conflict::SalesforceWins, &both(&diff, Some(&pend)));
        assert_eq!(d, Decision { take_salesforce: cols(&["phone"]), ..Default::default() });
    }

    #[test]
    fn a_reread_or_our_own_echo_is_no_conflict() {
        let (diff, pend) = (cols(&["email"]), cols(&["email"]));
        let mut b = both(&diff, Some(&pend));
        b.salesforce_changed = false;
        assert_eq!(decide(Conflict::SalesforceWins, &b), Decision::default(), "the pending local change goes out");
    }

    #[test]
    fn a_pending_insert_touches_every_column() {
        let diff = cols(&["email", "phone"]);
        let d = decide(Conflict::SalesforceWins, &both(&diff, None));
        assert_eq!(d.drop_local, diff);
        assert_eq!(d.conflict, Some((Winner::Salesforce, diff.clone())));
    }

    #[test]
    fn equal_values_are_no_conflict() {
        let (diff, pend) = (cols(&[]), cols(&["email"]));
        assert_eq!(decide(Conflict::PostgresWins, &both(&diff, Some(&pend))), Decision::default());
    }

    #[test]
    fn a_value_of_the_local_chain_is_an_echo_not_only_the_first() {
        // Ada -> Bea (pushed, its response lost: still pending) -> Cy pending: Salesforce
        // holding Bea is our own write, not a change of Salesforce's.
        let bases = [json!("Ada"), json!("Bea")];
        let k = Known { bases: &bases, sent: &[] };
        assert!(echo(k, &json!("Bea"), &json!("Bea"), None));
        assert!(echo(k, &json!("Ada"), &json!("Ada"), None));
        assert!(!echo(k, &json!("Dora"), &json!("Dora"), None), "a value we never had is Salesforce's change");
    }

    #[test]
    fn a_value_we_sent_is_an_echo() {
        // A late event or re-read of a version holding what we pushed before the newest change.
        let sent = [json!(42.5), json!("x")];
        let k = Known { bases: &[], sent: &sent };
        assert!(echo(k, &json!("42.5"), &json!(42.5), None), "compared in the form it was sent");
        assert!(!echo(k, &json!("42"), &json!(42), None));
        assert!(!echo(Known::default(), &json!("x"), &json!("x"), None), "nothing known: a change");
    }

    #[test]
    fn a_field_the_change_event_did_not_change_is_no_conflict() {
        assert!(echo(Known::default(), &json!("Dora"), &json!("Dora"), Some(false)));
        assert!(!echo(Known::default(), &json!("Dora"), &json!("Dora"), Some(true)));
    }

    #[test]
    fn only_the_really_changed_column_conflicts() {
        // Both sides touched name and email; Salesforce's name is our echo, its email is new.
        let (diff, pend) = (cols(&["name", "email", "phone"]), cols(&["name", "email"]));
        let bases = [json!("A")];
        let kept: Vec<String> = [("name", "A"), ("email", "new@sf")]
            .iter()
            .filter(|(_, v)| echo(Known { bases: &bases, sent: &[] }, &json!(v), &json!(v), None))
            .map(|(c, _)| c.to_string())
            .collect();
        let mut b = both(&diff, Some(&pend));
        b.salesforce_kept = &kept;
        let d = decide(Conflict::SalesforceWins, &b);
        assert_eq!(d.conflict, Some((Winner::Salesforce, cols(&["email"]))), "name is not named");
        assert_eq!(d.take_salesforce, cols(&["phone", "email"]), "the local name stays and goes out");
        assert_eq!(d.drop_local, cols(&["email"]));
    }

    #[test]
    fn policies_parse() {
        assert_eq!(Conflict::parse("last_modified_wins"), Ok(Conflict::LastModifiedWins));
        assert!(Conflict::parse("whoever").is_err());
    }
}
