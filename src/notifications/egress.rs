//! Outbound requests to partners: which addresses they may reach, and the HTTP client that
//! enforces it.
//!
//! A postback URL is the partner's to choose, so without a guard it could point maestro at
//! the operator's own network (SSRF). Addresses that are not globally routable — loopback,
//! private, link-local, carrier-grade NAT, documentation, multicast, … — are refused unless an
//! operator allows their subnet (`MAESTRO_DELIVERY_ALLOWED_SUBNETS`). The check happens in the
//! client's DNS resolver, on the very addresses the connection then uses, so a name that
//! resolves differently between a check and the request (DNS rebinding) gains nothing. URLs with
//! an IP literal never reach a resolver and are checked before the request.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Which addresses deliveries may reach.
#[derive(Clone, Debug, Default)]
pub struct EgressPolicy {
    allowed: Vec<IpNet>,
}

/// A postback address the policy refuses.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves to {address}, which is not a public address (refused)")]
pub struct Refused {
    pub host: String,
    pub address: IpAddr,
}

impl EgressPolicy {
    /// Non-public addresses inside `allowed` are reachable too.
    pub fn new(allowed: Vec<IpNet>) -> Self {
        EgressPolicy { allowed }
    }

    pub fn permits(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        is_public(address) || self.allowed.iter().any(|net| net.contains(&address))
    }

    pub fn check(&self, host: &str, address: IpAddr) -> Result<(), Refused> {
        if self.permits(address) {
            Ok(())
        } else {
            Err(Refused {
                host: host.to_owned(),
                address,
            })
        }
    }
}

/// An IPv4 address written as IPv6 (`::ffff:10.0.0.1`) is judged as the IPv4 address it is.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// Globally routable unicast, by the IANA special-purpose registries.
fn is_public(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0                                  // "this network"
        || (a == 100 && (64..128).contains(&b))    // carrier-grade NAT
        || (a == 192 && b == 0 && c == 0)          // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19))      // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let segments = ip.segments();
    let embedded_v4 = |ip: Ipv6Addr| {
        let [.., a, b, c, d] = ip.octets();
        Ipv4Addr::new(a, b, c, d)
    };
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        // NAT64: judged by the IPv4 address it reaches.
        return is_public_v4(embedded_v4(ip));
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (segments[0] & 0xfe00) == 0xfc00      // unique local
        || (segments[0] & 0xffc0) == 0xfe80      // link-local
        || (segments[0] & 0xffc0) == 0xfec0      // site-local (deprecated)
        || (segments[0] == 0x2001 && segments[1] == 0x0db8) // documentation
        || segments[..5] == [0, 0, 0, 0, 0]) // IPv4-compatible and other ::/80 forms
}

/// The resolver the delivery client uses: the system's, filtered by the policy.
struct GuardedResolver {
    policy: Arc<EgressPolicy>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut permitted = Vec::with_capacity(resolved.len());
            let mut refused = None;
            for address in resolved {
                match policy.check(&host, address.ip()) {
                    Ok(()) => permitted.push(address),
                    Err(err) => refused = Some(err),
                }
            }
            match (permitted.is_empty(), refused) {
                (true, Some(refused)) => Err(Box::new(refused) as _),
                _ => Ok(Box::new(permitted.into_iter()) as Addrs),
            }
        })
    }
}

/// The client for deliveries: the guarded resolver, no redirects, no proxy from the
/// environment (it would bypass the address check), and the request timeout.
pub fn client(policy: Arc<EgressPolicy>, timeout: Duration) -> anyhow::Result<reqwest::Client> {
    crate::tls::install_crypto_provider();
    Ok(reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver { policy }))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .pool_idle_timeout(Duration::from_secs(30))
        .user_agent(concat!("maestro/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// The policy's refusal, if that is why a request failed.
pub fn refusal(err: &reqwest::Error) -> Option<&Refused> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(err) = source {
        if let Some(refused) = err.downcast_ref::<Refused>() {
            return Some(refused);
        }
        source = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn non_public_addresses_are_refused_by_default() {
        let policy = EgressPolicy::default();
        for refused in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2001:db8::1",
        ] {
            assert!(!policy.permits(ip(refused)), "{refused} must be refused");
        }
        for permitted in ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(policy.permits(ip(permitted)), "{permitted} must be allowed");
        }
    }

    #[test]
    fn allowed_subnets_open_exactly_themselves() {
        let policy = EgressPolicy::new(vec!["127.0.0.0/8".parse().unwrap()]);
        assert!(policy.permits(ip("127.0.0.1")));
        assert!(policy.permits(ip("::ffff:127.0.0.1")));
        assert!(!policy.permits(ip("10.0.0.1")));
        assert!(!policy.permits(ip("::1")));
    }
}
