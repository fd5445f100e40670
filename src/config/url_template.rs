//! Heap-dump URL templates, checked when the configuration is read: the scheme and port come
//! from the template, the host is literal or exactly one placeholder, and nothing else can
//! change where a request goes (rendering, in `heap_dump`, percent-encodes every value and
//! admits only a plain host name for the host placeholder).

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Piece {
    Text(String),
    Attribute(String),
}

/// A checked heap-dump URL template.
#[derive(Debug, Clone, PartialEq)]
pub struct UrlTemplate {
    pub(crate) scheme: &'static str,
    pub(crate) host: Piece,
    /// `:port` or empty.
    pub(crate) port: String,
    pub(crate) rest: Vec<Piece>,
}

fn pieces(s: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find(['{', '}']) {
        if rest.as_bytes()[open] == b'}' {
            return Err("a '}' without its '{'".into());
        }
        if open > 0 {
            out.push(Piece::Text(rest[..open].to_owned()));
        }
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or("a '{' without its '}'")?;
        let name = &after[..close];
        if name.is_empty() || name.contains('{') {
            return Err(format!("{{{name}}} is not an attribute placeholder"));
        }
        out.push(Piece::Attribute(name.to_owned()));
        rest = &after[close + 1..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest.to_owned()));
    }
    Ok(out)
}

/// A host name or IPv4 address: letters, digits, `-` and `.`, starting with a letter or digit.
pub(crate) fn plain_host(h: &str) -> bool {
    h.len() <= 253
        && h.starts_with(|c: char| c.is_ascii_alphanumeric())
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

impl UrlTemplate {
    pub fn parse(template: &str) -> Result<UrlTemplate, String> {
        let (scheme, after) = if let Some(a) = template.strip_prefix("http://") {
            ("http", a)
        } else if let Some(a) = template.strip_prefix("https://") {
            ("https", a)
        } else {
            return Err(format!("{template:?} must start with http:// or https://"));
        };
        let end = after.find(['/', '?', '#']).unwrap_or(after.len());
        let (authority, rest) = after.split_at(end);
        if authority.contains('@') {
            return Err("user info (`@`) is not allowed in the URL".into());
        }
        let (host, port) = match authority.rfind(':') {
            Some(i) if !authority.ends_with(']') => (&authority[..i], &authority[i..]),
            _ => (authority, ""),
        };
        if !port.is_empty() && (port.len() < 2 || port[1..].parse::<u16>().is_err()) {
            return Err(format!(
                "{port:?} is not a port (the port cannot be templated)"
            ));
        }
        let host = match pieces(host)?.as_slice() {
            [Piece::Attribute(a)] => Piece::Attribute(a.clone()),
            [Piece::Text(h)] if h.parse::<http::uri::Authority>().is_ok() => Piece::Text(h.clone()),
            [] => return Err("the URL has no host".into()),
            _ => {
                return Err(
                    "the host must be literal or exactly one placeholder such as {host.name}"
                        .into(),
                )
            }
        };
        let rest = pieces(rest)?;
        Ok(UrlTemplate {
            scheme,
            host,
            port: port.to_owned(),
            rest,
        })
    }
}
