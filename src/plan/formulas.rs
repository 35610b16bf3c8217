//! The periodic refresh of formula and roll-up summary fields: their values change when
//! their inputs (often on other records) change, without SystemModstamp moving, so the
//! incremental pull never sees them.

use super::fields::ColumnMap;
use salesforce::soql::is_valid_identifier;

/// The mapped columns whose fields are calculated (describe `calculated: true`).
pub fn calculated(columns: &[ColumnMap]) -> Vec<&ColumnMap> {
    columns.iter().filter(|c| c.calculated).collect()
}

/// Id and the calculated fields only, for the records the mapping syncs. No ORDER BY: the
/// refresh is order-free, and unsorted Bulk query jobs are cheaper for Salesforce.
pub fn refresh_query(sobject: &str, fields: &[&str], filter: Option<&str>) -> Result<String, String> {
    for name in std::iter::once(&sobject).chain(fields.iter()) {
        if !is_valid_identifier(name) {
            return Err(format!("invalid Salesforce name {name:?}"));
        }
    }
    if fields.is_empty() {
        return Err("no calculated field to refresh".into());
    }
    let mut select = vec!["Id"];
    select.extend(fields.iter().copied().filter(|f| !f.eq_ignore_ascii_case("Id")));
    super::soql::select_from(&select.join(", "), sobject, filter, "")
}

/// Whether a refresh (or a delete check) is due: `age_secs` since the last one (None: never),
/// `interval_secs` from the setting (0: off).
pub fn due(age_secs: Option<f64>, interval_secs: i64) -> bool {
    interval_secs > 0 && age_secs.is_none_or(|a| a >= interval_secs as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::fields::test_column;

    fn col(field: &str, calculated: bool) -> ColumnMap {
        ColumnMap {
            field: field.into(),
            column: field.to_lowercase(),
            calculated,
            createable: !calculated,
            updateable: !calculated,
            ..test_column("double", "numeric")
        }
    }

    #[test]
    fn only_calculated_fields_are_refreshed() {
        let cols = [col("Name", false), col("Margin__c", true), col("Open_Deals__c", true)];
        let fields: Vec<&str> = calculated(&cols).iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["Margin__c", "Open_Deals__c"]);
        assert!(calculated(&[col("Name", false)]).is_empty());
    }

    #[test]
    fn the_refresh_reads_id_and_calculated_fields_within_the_filter() {
        assert_eq!(refresh_query("Account", &["Margin__c"], None).unwrap(), "SELECT Id, Margin__c FROM Account");
        assert_eq!(
            refresh_query("Account", &["Margin__c", "Open_Deals__c"], Some("Industry = 'Energy'")).unwrap(),
            "SELECT Id, Margin__c, Open_Deals__c FROM Account WHERE (Industry = 'Energy')"
        );
        assert!(refresh_query("Account", &[], None).is_err());
        assert!(refresh_query("Account", &["Bad Field"], None).is_err());
    }

    #[test]
    fn due_after_the_interval_and_never_when_off() {
        assert!(due(None, 3600));
        assert!(!due(Some(10.0), 3600));
        assert!(due(Some(3600.0), 3600));
        assert!(!due(None, 0));
    }
}
