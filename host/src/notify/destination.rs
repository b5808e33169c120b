//! Where a webhook may be sent: an http(s) URL whose host is on the public
//! internet, unless the admin set `webhooks.allow_private_networks`.
//!
//! The check runs twice. At job creation, so a tenant learns at once
//! (`notify.url`): an IP literal is judged as is, a name by what it resolves
//! to now. At delivery, on every connection: [`PublicOnly`] is the HTTP
//! client's resolver, so the addresses it checks are the only ones the client
//! connects to, and a name that resolves elsewhere later (DNS rebinding) is
//! refused then. IP literals never reach a resolver, so [`check_literal`]
//! judges them before each request.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::address::non_public;

/// Longest wait for DNS when a job is created.
const CREATION_LOOKUP: Duration = Duration::from_secs(5);

/// Why a webhook URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    #[error("`{url}` is not a URL: {reason}")]
    NotAUrl { url: String, reason: String },
    #[error("`{url}`: use an http:// or https:// URL with a host")]
    Scheme { url: String },
    #[error(
        "`{host}` is {kind} address ({ip}): webhooks may only go to public addresses unless the daemon's admin sets `webhooks.allow_private_networks`"
    )]
    NotPublic { host: String, ip: IpAddr, kind: &'static str },
}

/// The URL, if it is an http(s) URL with a host.
pub fn check_url(url: &str) -> Result<reqwest::Url, DestinationError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| DestinationError::NotAUrl { url: url.to_string(), reason: e.to_string() })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
        return Err(DestinationError::Scheme { url: url.to_string() });
    }
    Ok(parsed)
}

/// The host of `url` as it is judged: the URL parser (WHATWG) has already
/// lowered its case, applied IDNA, and turned numeric forms such as
/// `2130706433` and `0x7f.1` into dotted quads; this also drops the
/// trailing dots of a fully-qualified name (`localhost.` is `localhost`).
fn normalised_host(url: &reqwest::Url) -> Option<String> {
    let host = url.host_str()?.trim_start_matches('[').trim_end_matches(']');
    Some(host.trim_end_matches('.').to_ascii_lowercase())
}

/// The host of `url` if it is an IP literal (`127.0.0.1`, `[::1]`, `127.0.0.1.`).
fn literal(url: &reqwest::Url) -> Option<IpAddr> {
    normalised_host(url)?.parse().ok()
}

/// Names that stand for this host whatever DNS says (RFC 6761): `localhost`
/// and every name under it.
fn loopback_name(host: &str) -> bool {
    host == "localhost" || host.ends_with(".localhost")
}

fn check_ip(host: &str, ip: IpAddr) -> Result<(), DestinationError> {
    match non_public(ip) {
        Some(kind) => Err(DestinationError::NotPublic { host: host.to_string(), ip, kind }),
        None => Ok(()),
    }
}

/// Before each request: refuse a URL whose host is a non-public IP literal,
/// or a name that always means this host.
pub fn check_literal(url: &reqwest::Url) -> Result<(), DestinationError> {
    let host = url.host_str().unwrap_or_default();
    if normalised_host(url).is_some_and(|h| loopback_name(&h)) {
        return check_ip(host, IpAddr::from([127, 0, 0, 1]));
    }
    match literal(url) {
        Some(ip) => check_ip(host, ip),
        None => Ok(()),
    }
}

/// At job creation: the URL's syntax and, unless private networks are
/// allowed, its host: an IP literal, or every address its name resolves to
/// now. A name that does not resolve (yet) is accepted: delivery checks again.
pub async fn check_destination(url: &str, allow_private_networks: bool) -> Result<(), DestinationError> {
    let parsed = check_url(url)?;
    if allow_private_networks {
        return Ok(());
    }
    check_literal(&parsed)?;
    let Some(host) = parsed.host_str().filter(|_| literal(&parsed).is_none()) else { return Ok(()) };
    let port = parsed.port_or_known_default().unwrap_or(80);
    if let Ok(Ok(addrs)) = tokio::time::timeout(CREATION_LOOKUP, tokio::net::lookup_host((host, port))).await {
        for a in addrs {
            check_ip(host, a.ip())?;
        }
    }
    Ok(())
}

/// The webhook client's resolver: the system's, then every address checked.
/// A name with any non-public address is refused whole, so the client only
/// ever connects to checked addresses.
pub struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            for a in &addrs {
                check_ip(&host, a.ip())?;
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The [`DestinationError`] behind a failed request, if a check refused it.
pub fn refusal<'e>(error: &'e (dyn std::error::Error + 'static)) -> Option<&'e DestinationError> {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(d) = e.downcast_ref::<DestinationError>() {
            return Some(d);
        }
        cause = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        assert!(check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(matches!(check_url("ftp://x/y"), Err(DestinationError::Scheme { .. })));
        assert!(matches!(check_url("not a url"), Err(DestinationError::NotAUrl { .. })));
    }

    #[test]
    fn literals_in_any_spelling_are_judged() {
        for url in [
            "http://127.0.0.1/x",
            "http://2130706433/x",
            "http://0x7f.1/x",
            "http://[::1]:8080/x",
            "http://[::ffff:169.254.169.254]/",
            "https://10.0.0.1/",
            "http://127.0.0.1./x",
            "http://localhost./x",
            "http://LocalHost/x",
            "http://hooks.localhost:8080/x",
            // Full-width letters: IDNA maps them to `localhost`.
            "http://\u{ff4c}\u{ff4f}\u{ff43}\u{ff41}\u{ff4c}\u{ff48}\u{ff4f}\u{ff53}\u{ff54}/x",
        ] {
            let err = check_literal(&check_url(url).unwrap()).unwrap_err();
            assert!(matches!(err, DestinationError::NotPublic { .. }), "{url}: {err}");
        }
        assert!(check_literal(&check_url("http://8.8.8.8/x").unwrap()).is_ok());
        assert!(
            check_literal(&check_url("http://example.com/x").unwrap()).is_ok(),
            "names are the resolver's to judge"
        );
    }

    #[tokio::test]
    async fn creation_resolves_names_unless_private_networks_are_allowed() {
        let err = check_destination("http://localhost:9/hook", false).await.unwrap_err();
        assert!(err.to_string().contains("`localhost` is a loopback address"), "{err}");
        assert!(err.to_string().contains("webhooks.allow_private_networks"), "{err}");
        assert!(check_destination("http://localhost:9/hook", true).await.is_ok());
        assert!(check_destination("http://[fd00::1]/hook", false).await.is_err());
        // A name that does not resolve is left to delivery, which checks again.
        assert!(check_destination("http://no-such-host.invalid/hook", false).await.is_ok());
    }

    #[tokio::test]
    async fn the_client_never_connects_to_a_name_that_resolves_privately() {
        let client = reqwest::Client::builder().dns_resolver(PublicOnly).no_proxy().build().unwrap();
        // A listener that would accept the connection if the resolver let it through.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://localhost:{}/hook", listener.local_addr().unwrap().port());
        let err = client.post(&url).send().await.unwrap_err();
        let refused = refusal(&err).unwrap_or_else(|| panic!("not refused by the check: {err:?}"));
        assert!(matches!(refused, DestinationError::NotPublic { kind: "a loopback", .. }), "{refused}");
    }
}
