//! Who an alert is about, as Prometheus labels: only what identifies the
//! process (so the labels stay the same for the whole incident and two
//! leakwatch replicas fed the same data produce the same alerts).

use std::collections::BTreeMap;

use crate::engine::ResourceInfo;
use crate::otlp::proto::otlp::common::v1::any_value;

/// Resource attributes that identify a process, in label order.
const PROCESS: [&str; 3] = ["service.name", "service.namespace", "service.instance.id"];
/// What identifies a process that has no `service.instance.id` (a container).
const CONTAINER: [&str; 3] = ["k8s.namespace.name", "k8s.pod.name", "k8s.container.name"];

pub use crate::config::notify::IDENTITY_LABELS;

/// A resource attribute name as a Prometheus label name: every character
/// outside `[a-zA-Z0-9_]` becomes `_`, a leading digit gets a `_` in front
/// (the rule of Prometheus' OTLP translation).
pub fn label_name(attribute: &str) -> String {
    let mut out: String = attribute
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// A resource attribute's value as text (strings, integers, booleans).
pub fn attribute(resource: &ResourceInfo, key: &str) -> Option<String> {
    let kv = resource.attributes.iter().find(|kv| kv.key == key)?;
    match kv.value.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        any_value::Value::IntValue(i) => Some(i.to_string()),
        any_value::Value::BoolValue(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The identifying labels of `resource` (without `alertname` / `severity`):
/// `service_name` always, `service_namespace` / `service_instance_id` when
/// present, and the `k8s_*` names only for a resource without
/// `service.instance.id`.
pub fn process_labels(resource: &ResourceInfo) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    labels.insert("service_name".to_owned(), resource.service_name.clone());
    for key in &PROCESS[1..] {
        if let Some(v) = attribute(resource, key).filter(|v| !v.is_empty()) {
            labels.insert(label_name(key), v);
        }
    }
    if !labels.contains_key("service_instance_id") {
        for key in CONTAINER {
            if let Some(v) = attribute(resource, key).filter(|v| !v.is_empty()) {
                labels.insert(label_name(key), v);
            }
        }
    }
    labels
}

/// The stable id of one incident of `resource`, begun (suspected) at event time `start_ns`:
/// 16 hex digits of an xxh3 hash over the process's identity — its alert labels
/// ([`process_labels`]) and the engine's instance name — and `start_ns`. The same on every event
/// of the incident (suspected, confirmed, resolved), in every outlet, and in every leakwatch fed
/// the same data (event time, no wall clock, nothing of the leakwatch instance), so a downstream
/// deduplicates the events of an HA pair by it. Another incident of the same process (after a
/// resolution) begins at another time and so has another id.
pub fn incident_id(resource: &ResourceInfo, start_ns: u64) -> String {
    let mut buf = Vec::with_capacity(160);
    buf.extend_from_slice(b"leakwatch.incident.v1\0");
    for (k, v) in process_labels(resource) {
        for part in [k.as_bytes(), v.as_bytes()] {
            buf.extend_from_slice(part);
            buf.push(0);
        }
    }
    buf.extend_from_slice(resource.instance.as_bytes());
    buf.push(0);
    buf.extend_from_slice(&start_ns.to_le_bytes());
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&buf))
}

/// Everything but RFC 3986's unreserved characters is percent-encoded.
pub const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// leakwatch's page of one process, `<external_url>/resources/<id>`: the id is the resource
/// key (a hash of its attributes), the same in every replica fed the same data.
pub fn page_url(external_url: &str, resource: &ResourceInfo) -> String {
    format!(
        "{}/resources/{}",
        external_url.trim_end_matches('/'),
        resource.id()
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::otlp::proto::otlp::common::v1::{AnyValue, KeyValue};

    pub(crate) fn resource(attrs: &[(&str, &str)]) -> ResourceInfo {
        let attributes = attrs
            .iter()
            .map(|(k, v)| KeyValue {
                key: (*k).to_owned(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue((*v).to_owned())),
                }),
                ..Default::default()
            })
            .collect::<Vec<_>>();
        let text = |k: &str| {
            attrs
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| (*v).to_owned())
        };
        ResourceInfo {
            key: 1,
            service_name: text("service.name").unwrap_or_else(|| "unknown_service".into()),
            instance: text("service.instance.id")
                .or_else(|| text("k8s.pod.name"))
                .unwrap_or_default(),
            attributes,
            pod: None,
        }
    }

    #[test]
    fn names_follow_the_prometheus_translation() {
        assert_eq!(label_name("service.instance.id"), "service_instance_id");
        assert_eq!(label_name("k8s.pod.name"), "k8s_pod_name");
        assert_eq!(label_name("1st-thing"), "_1st_thing");
    }

    #[test]
    fn labels_are_the_process_and_only_it() {
        let r = resource(&[
            ("service.name", "checkout"),
            ("service.namespace", "shop"),
            ("service.instance.id", "pod-1"),
            ("host.name", "node-7"),
            ("k8s.pod.name", "checkout-abc"),
            ("process.pid", "42"),
        ]);
        let l = process_labels(&r);
        assert_eq!(
            l.into_iter().collect::<Vec<_>>(),
            vec![
                ("service_instance_id".into(), "pod-1".into()),
                ("service_name".into(), "checkout".into()),
                ("service_namespace".into(), "shop".into()),
            ]
        );
    }

    #[test]
    fn a_container_only_resource_is_named_by_its_k8s_names() {
        let r = resource(&[
            ("service.name", "checkout"),
            ("k8s.namespace.name", "shop"),
            ("k8s.pod.name", "checkout-abc"),
            ("k8s.container.name", "app"),
        ]);
        let l = process_labels(&r);
        assert_eq!(l["k8s_namespace_name"], "shop");
        assert_eq!(l["k8s_pod_name"], "checkout-abc");
        assert_eq!(l["k8s_container_name"], "app");
        assert_eq!(l.len(), 4);
    }

    #[test]
    fn the_incident_id_is_the_process_and_the_start_and_nothing_else() {
        let a = resource(&[
            ("service.name", "checkout"),
            ("service.instance.id", "pod-1"),
            ("host.name", "node-3"),
        ]);
        let id = incident_id(&a, 1_700_000_000_000_000_000);
        assert_eq!(id.len(), 16);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
        // Pinned: a change of the derivation changes every id downstream has stored.
        assert_eq!(id, "950c556f68bf5587");
        // The resource key (leakwatch's own hash) and attributes outside the identity play no part …
        let mut b = resource(&[
            ("service.name", "checkout"),
            ("service.instance.id", "pod-1"),
            ("host.name", "node-4"),
            ("process.pid", "7"),
        ]);
        b.key = 99;
        assert_eq!(incident_id(&b, 1_700_000_000_000_000_000), id);
        // … the start and the process do.
        assert_ne!(incident_id(&a, 1_700_000_000_000_000_001), id);
        let other = resource(&[
            ("service.name", "checkout"),
            ("service.instance.id", "pod-2"),
        ]);
        assert_ne!(incident_id(&other, 1_700_000_000_000_000_000), id);
        // Label boundaries are kept: ("ab", "c") is not ("a", "bc").
        let x = resource(&[("service.name", "ab"), ("service.namespace", "c")]);
        let y = resource(&[("service.name", "a"), ("service.namespace", "bc")]);
        assert_ne!(incident_id(&x, 1), incident_id(&y, 1));
    }

    #[test]
    fn the_page_url_is_the_process_view() {
        let mut r = resource(&[("service.name", "a b"), ("service.instance.id", "x&y")]);
        r.key = 0xab;
        assert_eq!(
            page_url("http://lw:8080/", &r),
            "http://lw:8080/resources/00000000000000ab"
        );
    }
}
