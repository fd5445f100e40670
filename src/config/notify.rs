//! The `notify:` section: where leak events go beyond leakwatch's own log and
//! the downstream (Alertmanager, a webhook, heap-dump endpoints), typed and
//! checked once at start like the rest of the configuration.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// Labels leakwatch sets itself; static labels may not override them.
pub const IDENTITY_LABELS: [&str; 8] = [
    "alertname",
    "severity",
    "service_name",
    "service_namespace",
    "service_instance_id",
    "k8s_namespace_name",
    "k8s_pod_name",
    "k8s_container_name",
];

/// Notifications (all off unless configured).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Alerts for Alertmanager (API v2); off while `url` is unset.
    pub alertmanager: AlertmanagerConfig,
    /// A generic JSON POST of every lifecycle event; off while `url` is unset.
    pub webhook: WebhookConfig,
    /// Heap-dump endpoints called once when a leak is confirmed (an allow-list: only these
    /// URLs are ever called).
    #[serde(deserialize_with = "indexed")]
    pub heap_dump: Vec<HeapDumpRule>,
}

/// The rules one by one, so an error names its entry (`heap_dump[1]: unknown field …`).
fn indexed<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<HeapDumpRule>, D::Error> {
    use serde::de::Error;
    Vec::<serde_yaml::Value>::deserialize(d)?
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            serde_yaml::from_value(v).map_err(|e| D::Error::custom(format!("heap_dump[{i}]: {e}")))
        })
        .collect()
}

/// `notify.alertmanager`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertmanagerConfig {
    /// Alertmanager's base URL, e.g. `http://127.0.0.1:9093`; alerts are POSTed to
    /// `<url>/api/v2/alerts`. Unset: no alerts.
    pub url: Option<String>,
    /// Every open alert is re-sent this often (Alertmanager forgets alerts it stops hearing
    /// about); an alert is valid for four of these.
    #[serde(with = "humantime_serde")]
    pub resend_interval: Duration,
    /// Whole-request timeout of one POST.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// leakwatch's page as users reach it; each alert's `generatorURL` links to the process
    /// there. Unset: the `generatorURL` is left out.
    pub external_url: Option<String>,
    /// Static labels added to every alert (e.g. `cluster: eu-1`).
    pub labels: BTreeMap<String, String>,
    /// Annotation `runbook_url` of every alert, when set.
    pub runbook_url: Option<String>,
}

impl Default for AlertmanagerConfig {
    fn default() -> Self {
        AlertmanagerConfig {
            url: None,
            resend_interval: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            external_url: None,
            labels: BTreeMap::new(),
            runbook_url: None,
        }
    }
}

/// `notify.webhook`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// Where every lifecycle event is POSTed as JSON. Unset: no webhook.
    pub url: Option<String>,
    /// Extra request headers (e.g. `Authorization`); their values are secrets (`check-config`
    /// prints them as `<redacted>`).
    pub headers: BTreeMap<String, Secret>,
}

/// The HTTP method of a heap-dump call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HeapDumpMethod {
    #[default]
    Get,
    Post,
}

/// One entry of `notify.heap_dump`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeapDumpRule {
    /// Resource attributes that must all be equal for the rule to apply (empty: every process).
    #[serde(default, rename = "match")]
    pub matches: BTreeMap<String, String>,
    /// The URL template: `{attribute}` is replaced by that resource attribute, percent-encoded.
    /// The scheme, host and port may not be templated; a placeholder may stand for the host
    /// only when it is the whole host (`http://{host.name}:3000/…`), and the value must then
    /// be a plain host name or address.
    pub url: String,
    /// `GET` or `POST`.
    #[serde(default)]
    pub method: HeapDumpMethod,
    /// Whole-request timeout (writing a heap snapshot takes a while).
    #[serde(default = "default_heap_dump_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// At most one dump per process in this time.
    #[serde(default = "default_min_interval", with = "humantime_serde")]
    pub min_interval: Duration,
}

fn default_heap_dump_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_min_interval() -> Duration {
    Duration::from_secs(6 * 3600)
}

/// Maps whose keys are the user's (label names, header names): the unknown-key check of the
/// configuration does not look into them.
pub const FREE_FORM: [&str; 3] = [
    "notify.alertmanager.labels",
    "notify.webhook.headers",
    "notify.heap_dump",
];

/// Whether `name` is a valid Prometheus label name (and not a reserved one).
pub fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

fn check_http_url(key: &str, url: &str, errors: &mut Vec<String>) {
    match url.parse::<http::Uri>() {
        Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some() => {}
        _ => errors.push(format!("{key}: {url:?} is not an http:// or https:// URL")),
    }
}

impl NotifyConfig {
    /// Adds every problem of the section to `errors`, each naming its key.
    pub fn validate(&self, errors: &mut Vec<String>) {
        {
            let am = &self.alertmanager;
            if let Some(url) = &am.url {
                check_http_url("notify.alertmanager.url", url, errors);
            }
            if let Some(url) = &am.external_url {
                check_http_url("notify.alertmanager.external_url", url, errors);
            }
            if am.resend_interval.is_zero() {
                errors.push("notify.alertmanager.resend_interval: must be > 0".to_owned());
            }
            if am.timeout.is_zero() {
                errors.push("notify.alertmanager.timeout: must be > 0".to_owned());
            }
            for name in am.labels.keys() {
                if !valid_label_name(name) {
                    errors.push(format!(
                        "notify.alertmanager.labels.{name}: not a valid Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)"
                    ));
                } else if IDENTITY_LABELS.contains(&name.as_str()) {
                    errors.push(format!(
                        "notify.alertmanager.labels.{name}: set by leakwatch (it identifies the process)"
                    ));
                }
            }
        }
        {
            let w = &self.webhook;
            if let Some(url) = &w.url {
                check_http_url("notify.webhook.url", url, errors);
            }
            for (name, value) in &w.headers {
                if http::HeaderName::try_from(name.as_str()).is_err()
                    || http::HeaderValue::try_from(value.expose()).is_err()
                {
                    errors.push(format!(
                        "notify.webhook.headers.{name}: not a valid HTTP header"
                    ));
                }
            }
        }
        for (i, rule) in self.heap_dump.iter().enumerate() {
            let key = format!("notify.heap_dump[{i}]");
            if let Err(e) = super::url_template::UrlTemplate::parse(&rule.url) {
                errors.push(format!("{key}.url: {e}"));
            }
            if rule.timeout.is_zero() {
                errors.push(format!("{key}.timeout: must be > 0"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names_follow_prometheus() {
        assert!(valid_label_name("cluster"));
        assert!(valid_label_name("_x1"));
        assert!(!valid_label_name("1x"));
        assert!(!valid_label_name("a-b"));
        assert!(!valid_label_name("__meta"));
        assert!(!valid_label_name(""));
    }

    #[test]
    fn every_bad_key_is_named() {
        let yaml = "alertmanager:\n  url: ftp://x\n  resend_interval: 0s\n  labels: {a-b: x, severity: y}\nwebhook:\n  url: nope\nheap_dump:\n  - url: 'http://{host.name}.evil.com/x'\n";
        let c: NotifyConfig = serde_yaml::from_str(yaml).expect("parses");
        let mut errors = Vec::new();
        c.validate(&mut errors);
        let all = errors.join("\n");
        for key in [
            "notify.alertmanager.url",
            "notify.alertmanager.resend_interval",
            "notify.alertmanager.labels.a-b",
            "notify.alertmanager.labels.severity",
            "notify.webhook.url",
            "notify.heap_dump[0].url",
        ] {
            assert!(all.contains(key), "{key} missing in:\n{all}");
        }
        assert_eq!(errors.len(), 6, "{all}");
    }

    #[test]
    fn the_issue_example_parses() {
        let yaml = "alertmanager:\n  url: null\n  resend_interval: 1m\n  timeout: 10s\n  external_url: null\n  labels: {}\n  runbook_url: null\nwebhook:\n  url: null\n  headers: {}\nheap_dump:\n  - match: {service.name: checkout}\n    url: \"http://{host.name}:3000/debug/heapdump\"\n    method: GET\n    timeout: 30s\n    min_interval: 6h\n";
        let c: NotifyConfig = serde_yaml::from_str(yaml).expect("parses");
        let mut errors = Vec::new();
        c.validate(&mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(c.heap_dump[0].min_interval, Duration::from_secs(6 * 3600));
        assert_eq!(c.heap_dump[0].matches["service.name"], "checkout");
    }

    fn load(yaml: &str) -> Result<crate::config::Config, Vec<String>> {
        let path = std::env::temp_dir().join(format!(
            "leakwatch-notify-{}-{}.yaml",
            std::process::id(),
            yaml.len()
        ));
        std::fs::write(&path, yaml).expect("write");
        let env = std::collections::BTreeMap::<String, String>::new();
        let r = crate::config::Config::load(Some(&path), &env, &[]).map_err(|e| e.0);
        let _ = std::fs::remove_file(&path);
        r
    }

    #[test]
    fn unknown_keys_are_named_by_path_but_labels_and_headers_are_the_users() {
        let errors = load("notify:\n  alertmanager:\n    urll: http://x\n    labels: {cluster: eu-1}\n  webhook:\n    headers: {X-Team: core}\n")
            .expect_err("urll is unknown");
        assert_eq!(errors, ["notify.alertmanager.urll: unknown key"]);
        let c = load("notify:\n  alertmanager:\n    url: http://127.0.0.1:9093\n    labels: {cluster: eu-1}\n  webhook:\n    url: http://127.0.0.1:8080/hook\n    headers: {X-Team: core}\n")
            .expect("valid");
        assert_eq!(c.notify.alertmanager.labels["cluster"], "eu-1");
        assert_eq!(c.notify.webhook.headers["X-Team"].expose(), "core");
        let printed = serde_yaml::to_string(&c).expect("yaml");
        assert!(
            !printed.contains("core") && printed.contains("X-Team: <redacted>"),
            "{printed}"
        );
        assert!(load("notify: {}\n")
            .expect("valid")
            .notify
            .alertmanager
            .url
            .is_none());
    }
}
