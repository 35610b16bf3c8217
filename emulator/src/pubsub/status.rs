//! The Pub/Sub API's errors and authentication: a gRPC status whose message ends with
//! `rpcId: …` and whose trailers carry Salesforce's `error-code` and `rpc-id`.

use crate::state::AppState;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Status};

pub const AUTH_ERROR: &str = "sfdc.platform.eventbus.grpc.service.auth.error";
pub const TOPIC_NOT_FOUND: &str = "sfdc.platform.eventbus.grpc.topic.not.found";
pub const SCHEMA_NOT_FOUND: &str = "sfdc.platform.eventbus.grpc.schema.not.found";
pub const REPLAY_INVALID: &str = "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.validation.failed";
pub const REPLAY_CORRUPTED: &str = "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted";
pub const BAD_REQUEST: &str = "sfdc.platform.eventbus.grpc.service.invalid.request";
pub const PUBLISH_DENIED: &str = "sfdc.platform.eventbus.grpc.publish.permission.denied";
/// The emulator's own code for a service-side failure (an injected fault, a dropped stream).
pub const UNAVAILABLE: &str = "sfdc.platform.eventbus.grpc.service.unavailable";

/// A UUID-shaped id for one RPC, as Salesforce puts in every response and error.
pub fn rpc_id(st: &AppState) -> String {
    let (a, b) = (st.rand_u64(), st.rand_u64());
    format!("{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}", a >> 32, (a >> 16) & 0xffff, a & 0xfff, (b >> 48) | 0x8000, b & 0xffff_ffff_ffff)
}

pub fn error(st: &AppState, code: Code, error_code: &str, msg: &str) -> Status {
    let id = rpc_id(st);
    let mut md = MetadataMap::new();
    if let Ok(v) = MetadataValue::try_from(error_code) {
        md.insert("error-code", v);
    }
    if let Ok(v) = MetadataValue::try_from(id.as_str()) {
        md.insert("rpc-id", v);
    }
    Status::with_metadata(code, format!("{msg} rpcId: {id}"), md)
}

/// The gRPC status an injected HTTP status fault stands for (faults.rs), with Salesforce's
/// message for it.
pub fn for_http_status(st: &AppState, http: u16) -> Status {
    let code = match http {
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        429 => Code::ResourceExhausted,
        502..=504 => Code::Unavailable,
        400..=499 => Code::InvalidArgument,
        _ => Code::Internal,
    };
    error(st, code, UNAVAILABLE, crate::faults::status_body(http).1)
}

/// Checks the call's `accesstoken`, `instanceurl` and `tenantid` headers: a live session of
/// this org (tenant as the 15- or 18-character org Id).
pub fn authenticate(st: &AppState, md: &MetadataMap) -> Result<(), Status> {
    let get = |k: &str| md.get(k).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty());
    let ok = match (get("accesstoken"), get("instanceurl"), get("tenantid")) {
        (Some(token), Some(_), Some(tenant)) => {
            let tenant_ok = tenant == st.org_id || (tenant.len() == 15 && st.org_id.starts_with(tenant));
            tenant_ok && st.session_valid(token)
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(error(
            st,
            Code::Unauthenticated,
            AUTH_ERROR,
            "An authentication exception occurred. Provide valid authentication via the accesstoken, instanceurl and tenantid metadata headers.",
        ))
    }
}
