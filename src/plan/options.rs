//! A mapping's options, typed. The catalog and the SQL API keep text (readable in
//! `sfsync.mappings`, stable argument values); they are parsed once, where `sync_table`
//! validates its arguments and where a mapping is loaded, and Rust code matches on the
//! enums. A new option value is a new variant here: the compiler then lists every place
//! that must decide what it means.
//!
//! Each enum reads and writes its SQL spelling (`as_str`, serde in snake_case), and
//! `parse` says which value is wrong and which ones are allowed.

use serde::{Deserialize, Serialize};

/// Declares an option enum with its SQL spellings, `ALL`, `as_str`, `parse` and serde.
macro_rules! option_enum {
    ($(#[$doc:meta])* $name:ident, $what:literal, { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// The value as given in SQL; the error names the bad value and the allowed ones.
            pub fn parse(s: &str) -> Result<$name, String> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s).ok_or_else(|| {
                    let allowed: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                    format!("{}: \"{s}\" is not one of {}", $what, allowed.join(", "))
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

option_enum!(
    /// Which way rows flow.
    Direction, "direction", {
        Bidirectional = "bidirectional",
        /// Salesforce to Postgres only: no capture trigger, nothing pushed.
        Pull = "pull",
        /// Postgres to Salesforce only: never polled, no backfill.
        Push = "push",
    }
);

impl Direction {
    /// Local changes go to Salesforce.
    pub fn pushes(self) -> bool {
        self != Direction::Pull
    }
    /// Salesforce changes come to Postgres.
    pub fn pulls(self) -> bool {
        self != Direction::Push
    }
}

option_enum!(
    /// How local changes reach Salesforce.
    Mode, "mode", {
        /// Captured into the outbox and pushed by the worker after commit.
        Async = "async",
        /// Sent synchronously by a BEFORE trigger; a rejection fails the statement.
        WriteThrough = "write_through",
        /// A trial run: pulls apply without firing the table's triggers, local changes are
        /// logged (`sfsync.shadow_log`) instead of sent, until `sfsync.go_live`.
        Shadow = "shadow",
    }
);

option_enum!(
    /// Who wins when both sides changed a record since the last sync (`plan::conflict`).
    #[allow(clippy::enum_variant_names)]
    Conflict, "conflict", {
        SalesforceWins = "salesforce_wins",
        PostgresWins = "postgres_wins",
        LastModifiedWins = "last_modified_wins",
    }
);

option_enum!(
    /// What becomes of a record whose row left a synced query's result (`plan::query`).
    OnRemove, "on_remove", {
        /// Its mapped fields are set to NULL; the record stays.
        Clear = "clear",
        /// The record is deleted (a segment's CampaignMember).
        Delete = "delete",
    }
);

option_enum!(
    /// What a delete on one side does to the other.
    OnDelete, "on_delete", {
        /// The other side's row or record goes too.
        Propagate = "propagate",
        /// The other side keeps it (an orphan).
        Ignore = "ignore",
        /// The other side keeps it until a person approves (`sfsync.delete_review`).
        Review = "review",
    }
);

/// A mapping's options, parsed and checked together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Options {
    pub direction: Direction,
    pub mode: Mode,
    pub conflict: Conflict,
    pub on_delete: OnDelete,
}

impl Default for Options {
    /// The SQL API's defaults.
    fn default() -> Options {
        Options {
            direction: Direction::Bidirectional,
            mode: Mode::Async,
            conflict: Conflict::SalesforceWins,
            on_delete: OnDelete::Propagate,
        }
    }
}

/// The capture trigger a pushing table gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capture {
    /// Nothing to capture (the table only pulls).
    None,
    /// AFTER ROW trigger into the outbox.
    Outbox,
    /// BEFORE ROW trigger that sends the change in the statement.
    WriteThrough,
    /// AFTER ROW trigger into the shadow log: what would be sent, nothing is.
    Shadow,
}

impl Options {
    /// Parses the SQL arguments; the first bad one is named.
    pub fn parse(direction: &str, mode: &str, conflict: &str, on_delete: &str) -> Result<Options, String> {
        let o = Options {
            direction: Direction::parse(direction)?,
            mode: Mode::parse(mode)?,
            conflict: Conflict::parse(conflict)?,
            on_delete: OnDelete::parse(on_delete)?,
        };
        o.check()?;
        Ok(o)
    }

    /// Combinations that make no sense.
    pub fn check(&self) -> Result<(), String> {
        if self.mode == Mode::WriteThrough && !self.direction.pushes() {
            return Err(
                "mode => 'write_through' sends local changes to Salesforce; it needs direction => 'bidirectional' or 'push', not 'pull'"
                    .into(),
            );
        }
        Ok(())
    }

    pub fn capture(&self) -> Capture {
        match (self.direction.pushes(), self.mode) {
            (false, _) => Capture::None,
            (true, Mode::Async) => Capture::Outbox,
            (true, Mode::WriteThrough) => Capture::WriteThrough,
            (true, Mode::Shadow) => Capture::Shadow,
        }
    }

    /// A shadow run: nothing is sent, and the sync's writes fire no triggers.
    pub fn shadow(&self) -> bool {
        self.mode == Mode::Shadow
    }

    /// A local delete waits for review instead of being sent.
    pub fn holds_local_deletes(&self) -> bool {
        self.direction.pushes() && self.on_delete == OnDelete::Review
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_round_trips_through_its_sql_spelling() {
        for d in Direction::ALL {
            assert_eq!(Direction::parse(d.as_str()), Ok(*d));
            assert_eq!(serde_json::to_value(d).unwrap(), serde_json::json!(d.as_str()));
        }
        for m in Mode::ALL {
            assert_eq!(Mode::parse(m.as_str()), Ok(*m));
            assert_eq!(serde_json::from_value::<Mode>(serde_json::json!(m.as_str())).unwrap(), *m);
        }
        for c in Conflict::ALL {
            assert_eq!(Conflict::parse(c.as_str()), Ok(*c));
            assert_eq!(serde_json::from_value::<Conflict>(serde_json::json!(c.as_str())).unwrap(), *c);
        }
        for o in OnDelete::ALL {
            assert_eq!(OnDelete::parse(o.as_str()), Ok(*o));
        }
        assert_eq!(Mode::WriteThrough.to_string(), "write_through");
    }

    #[test]
    fn a_bad_value_is_named_with_the_allowed_ones() {
        assert_eq!(Direction::parse("both").unwrap_err(), "direction: \"both\" is not one of bidirectional, pull, push");
        assert_eq!(
            Conflict::parse("Salesforce_Wins").unwrap_err(),
            "conflict: \"Salesforce_Wins\" is not one of salesforce_wins, postgres_wins, last_modified_wins"
        );
        assert_eq!(OnDelete::parse("").unwrap_err(), "on_delete: \"\" is not one of propagate, ignore, review");
        let e = Options::parse("pull", "sync", "salesforce_wins", "propagate").unwrap_err();
        assert_eq!(e, "mode: \"sync\" is not one of async, write_through, shadow");
    }

    #[test]
    fn write_through_needs_a_pushing_direction() {
        assert!(Options::parse("pull", "write_through", "salesforce_wins", "propagate").unwrap_err().contains("not 'pull'"));
        let o = Options::parse("push", "write_through", "postgres_wins", "ignore").unwrap();
        assert_eq!(o.capture(), Capture::WriteThrough);
        assert_eq!(o.conflict, Conflict::PostgresWins);
    }

    #[test]
    fn a_shadow_run_logs_what_a_pushing_table_would_send() {
        let o = Options::parse("bidirectional", "shadow", "salesforce_wins", "propagate").unwrap();
        assert!(o.shadow());
        assert_eq!(o.capture(), Capture::Shadow);
        let pull = Options::parse("pull", "shadow", "salesforce_wins", "propagate").unwrap();
        assert_eq!(pull.capture(), Capture::None, "a pull-only shadow has nothing to log");
        assert!(!Options::default().shadow());
    }

    #[test]
    fn directions_say_which_way_rows_flow() {
        assert!(Direction::Bidirectional.pushes() && Direction::Bidirectional.pulls());
        assert!(!Direction::Pull.pushes() && Direction::Pull.pulls());
        assert!(Direction::Push.pushes() && !Direction::Push.pulls());
        assert_eq!(Options { direction: Direction::Pull, ..Options::default() }.capture(), Capture::None);
        assert_eq!(Options::default().capture(), Capture::Outbox);
    }

    #[test]
    fn only_a_pushing_table_holds_its_local_deletes_for_review() {
        let review = Options { on_delete: OnDelete::Review, ..Options::default() };
        assert!(review.holds_local_deletes());
        assert!(!Options { direction: Direction::Pull, ..review }.holds_local_deletes());
        assert!(!Options::default().holds_local_deletes());
    }
}
