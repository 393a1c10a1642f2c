//! Events on the database from the ops-manager's reporter (the shared, size-checked publisher).

use dbtls_runtime::events;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::EventType;

use crate::context::Context;

pub async fn publish(
    ctx: &Context,
    regarding: &ObjectReference,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let warning = type_ == EventType::Warning;
    events::publish(&ctx.recorder, regarding, warning, reason, action, &note).await;
}
