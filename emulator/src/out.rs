//! Order-preserving JSON objects for records (`attributes` first, then fields in select or
//! describe order) without turning on serde_json's workspace-wide `preserve_order` feature.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value as Json;

#[derive(Debug, Clone)]
pub enum Out {
    J(Json),
    O(Vec<(String, Out)>),
    A(Vec<Out>),
}

impl Serialize for Out {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Out::J(j) => j.serialize(s),
            Out::O(entries) => {
                let mut m = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
            Out::A(items) => s.collect_seq(items),
        }
    }
}

/// `{"type": ..., "url": ...}` for a record.
pub fn attributes(object: &str, version: &str, id: &str) -> Out {
    Out::O(vec![
        ("type".into(), Out::J(Json::String(object.into()))),
        ("url".into(), Out::J(Json::String(format!("/services/data/v{version}/sobjects/{object}/{id}")))),
    ])
}
