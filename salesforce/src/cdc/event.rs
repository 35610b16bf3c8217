//! The change event model (`ChangeEventHeader`, changed fields) and its parsing from a
//! delivered `/data/...` message.

use serde_json::Value;

use crate::types::Record;

/// `ChangeEventHeader.changeType`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeType {
    Create,
    Update,
    Delete,
    Undelete,
    GapCreate,
    GapUpdate,
    GapDelete,
    GapUndelete,
    /// More changes in one transaction than events; re-read the object.
    GapOverflow,
    Other(String),
}

impl ChangeType {
    pub fn parse(s: &str) -> ChangeType {
        match s {
            "CREATE" => ChangeType::Create,
            "UPDATE" => ChangeType::Update,
            "DELETE" => ChangeType::Delete,
            "UNDELETE" => ChangeType::Undelete,
            "GAP_CREATE" => ChangeType::GapCreate,
            "GAP_UPDATE" => ChangeType::GapUpdate,
            "GAP_DELETE" => ChangeType::GapDelete,
            "GAP_UNDELETE" => ChangeType::GapUndelete,
            "GAP_OVERFLOW" => ChangeType::GapOverflow,
            other => ChangeType::Other(other.to_string()),
        }
    }
    /// Gap events carry no field values: the records must be re-read.
    pub fn is_gap(&self) -> bool {
        matches!(
            self,
            ChangeType::GapCreate | ChangeType::GapUpdate | ChangeType::GapDelete | ChangeType::GapUndelete | ChangeType::GapOverflow
        )
    }
}

/// `data.payload.ChangeEventHeader`.
#[derive(Clone, Debug, PartialEq)]
pub struct ChangeEventHeader {
    pub entity_name: String,
    pub record_ids: Vec<String>,
    pub change_type: ChangeType,
    /// Changed fields of an UPDATE (`BillingAddress.City` for compound parts; includes `LastModifiedDate`).
    pub changed_fields: Vec<String>,
    /// Fields an UPDATE set to null.
    pub nulled_fields: Vec<String>,
    pub diff_fields: Vec<String>,
    /// Commit time, epoch milliseconds.
    pub commit_timestamp: i64,
    pub commit_number: i64,
    pub commit_user: String,
    /// Shared by the events of one transaction, ordered by `sequence_number`.
    pub transaction_key: String,
    pub sequence_number: i64,
    /// `com/salesforce/api/rest/62.0;client=X` for API changes, empty otherwise.
    pub change_origin: String,
}

/// One change event.
#[derive(Clone, Debug, PartialEq)]
pub struct ChangeEvent {
    /// The channel it was delivered on.
    pub channel: String,
    pub replay_id: i64,
    pub schema: String,
    pub header: ChangeEventHeader,
    /// The payload's fields without the header: for CREATE/UNDELETE the non-null
    /// fields, for UPDATE the changed ones (nulled ones as `null`), compound
    /// fields (`Name`, `BillingAddress`) as nested objects.
    pub fields: Record,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

/// Parses one delivered `/data/...` message into a [`ChangeEvent`].
pub fn parse_event(v: &Value) -> Option<ChangeEvent> {
    let channel = v.get("channel")?.as_str()?.to_string();
    let data = v.get("data")?;
    let replay_id = data.get("event")?.get("replayId")?.as_i64()?;
    let mut fields = data.get("payload")?.as_object()?.clone();
    let h = fields.remove("ChangeEventHeader")?;
    let s = |k: &str| h.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let n = |k: &str| h.get(k).and_then(Value::as_i64).unwrap_or_default();
    let header = ChangeEventHeader {
        entity_name: s("entityName"),
        record_ids: strings(&h["recordIds"]),
        change_type: ChangeType::parse(&s("changeType")),
        changed_fields: strings(&h["changedFields"]),
        nulled_fields: strings(&h["nulledFields"]),
        diff_fields: strings(&h["diffFields"]),
        commit_timestamp: n("commitTimestamp"),
        commit_number: n("commitNumber"),
        commit_user: s("commitUser"),
        transaction_key: s("transactionKey"),
        sequence_number: n("sequenceNumber"),
        change_origin: s("changeOrigin"),
    };
    let schema = data.get("schema").and_then(Value::as_str).unwrap_or_default().to_string();
    Some(ChangeEvent { channel, replay_id, schema, header, fields })
}
