//! Conflict resolution: what the pull does with a Salesforce change of a record that also
//! has a local change waiting in the outbox.

use super::options::Conflict;

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
    /// Columns whose Salesforce value is still the one they had before the local change:
    /// Salesforce did not change them, so they are no conflict and the local value stays.
    pub salesforce_kept: &'a [String],
    /// Salesforce changed the record since the last sync: not a re-read of a version the
    /// pull already saw, and not our own push coming back.
    pub salesforce_changed: bool,
    /// Salesforce's LastModifiedDate and the capture time of the newest pending local
    /// change, in microseconds since the epoch (for `last_modified_wins`).
    pub salesforce_modified: Option<i64>,
    pub postgres_modified: Option<i64>,
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
    fn policies_parse() {
        assert_eq!(Conflict::parse("last_modified_wins"), Ok(Conflict::LastModifiedWins));
        assert!(Conflict::parse("whoever").is_err());
    }
}
