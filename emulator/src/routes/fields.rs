//! `/__emulator/fields/...`: custom fields added, changed and removed at runtime, as a Setup user
//! does in a real org (documented in README.md). The org then behaves as after such a change:
//! describe (and its Last-Modified), SOQL, REST and Bulk validation, stored values and change
//! events all follow the new fields.

use super::St;
use crate::rules::Rules;
use crate::schema::alter::{self, Altered, FieldPatch, Slots};
use crate::schema::Schema;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{patch, post};
use axum::{Json, Router};
use serde_json::{json, Value as Json_};
use std::sync::Arc;

pub fn router() -> Router<Arc<AppState>> {
    Router::new().route("/__emulator/fields/{object}", post(add)).route("/__emulator/fields/{object}/{field}", patch(update).delete(remove))
}

fn bad(msg: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": msg.into()}))).into_response()
}

/// Runs one change under the rules and store locks (in the order the save path takes them), so
/// no save sees the stored values half moved.
fn apply(st: &AppState, object: &str, change: impl FnOnce(&Schema, usize, &mut Rules, i64) -> Result<Altered, String>) -> Response {
    let Some(obj) = st.schema.object(object) else { return bad(format!("unknown object {object}")) };
    let mut rules = st.rules.write();
    let mut store = st.store.write();
    let old = st.schema.get();
    let a = match change(old, obj, &mut rules, st.clock.now_ms()) {
        Ok(a) => a,
        Err(e) => return bad(e),
    };
    let def = &a.schema.objects[obj];
    let old_id = st.cdc.schema_ids.read()[obj].clone();
    st.past_schemas.lock().insert(old_id, (old, obj));
    st.cdc.fields_changing(old, obj, def);
    let table = &mut store.tables[obj];
    match a.slots {
        Slots::Keep if def.indexed == old.objects[obj].indexed => {}
        Slots::Keep => table.rewrite(def, |_| {}),
        Slots::Removed(p) => table.rewrite(def, |r| r.drop_slot(p)),
        Slots::Retyped(p) => table.rewrite(def, |r| {
            let v = crate::value::convert(&def.fields[p], r.get(p));
            r.set(p, v);
        }),
    }
    let body = crate::schema::describe::object(&a.schema, def, &st.cfg.api_version);
    st.schema.replace(a.schema);
    Json(body).into_response()
}

/// Body: one field in the schema file's format (`name`, `type`, `length`, `externalId`, ...).
async fn add(State(st): St, Path(object): Path<String>, body: axum::body::Bytes) -> Response {
    let spec: Json_ = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => return bad(format!("bad request body: {e}")),
    };
    let r = apply(&st, &object, |s, obj, _, now| alter::add(s, obj, spec, now));
    if r.status().is_success() {
        return (StatusCode::CREATED, r).into_response();
    }
    r
}

/// Body: any of `name` (rename), `label`, `type`, `length`, `precision`, `scale`, `digits`,
/// `picklistValues`, `externalId`, `unique`, `required`.
async fn update(State(st): St, Path((object, field)): Path<(String, String)>, body: axum::body::Bytes) -> Response {
    let p: FieldPatch = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return bad(format!("bad request body: {e}")),
    };
    apply(&st, &object, |s, obj, rules, now| {
        let a = alter::update(s, obj, &field, p, now)?;
        // Setup follows a rename in the rules that name the field (same position).
        if let Some(fi) = s.objects[obj].field(&field) {
            rules.rename_field(&s.objects[obj].name, &s.objects[obj].fields[fi].name, &a.schema.objects[obj].fields[fi].name);
        }
        Ok(a)
    })
}

async fn remove(State(st): St, Path((object, field)): Path<(String, String)>) -> Response {
    apply(&st, &object, |s, obj, rules, now| {
        let def = &s.objects[obj];
        if let Some(by) = def.field(&field).and_then(|fi| rules.naming(&def.name, &def.fields[fi].name)) {
            return Err(format!("Cannot delete {}.{field}: it is referenced by {by}", def.name));
        }
        alter::remove(s, obj, &field, now)
    })
}
