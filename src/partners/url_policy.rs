//! Which URLs a partner may show to users: `https` only, on its allowed domains or their
//! subdomains. An empty string stands for "no URL" and is always allowed.

use url::{Host, Url};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UrlPolicy {
    domains: Vec<String>,
}

impl UrlPolicy {
    pub fn new(domains: &[String]) -> Self {
        UrlPolicy {
            domains: domains
                .iter()
                .map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase())
                .collect(),
        }
    }

    pub fn allows(&self, candidate: &str) -> bool {
        if candidate.is_empty() {
            return true;
        }
        let Ok(url) = Url::parse(candidate) else {
            return false;
        };
        // Credentials in a link are a phishing tool, never a partner's need.
        if url.scheme() != "https" || !url.username().is_empty() || url.password().is_some() {
            return false;
        }
        let Some(Host::Domain(host)) = url.host() else {
            return false;
        };
        let host = host.trim_end_matches('.');
        self.domains.iter().any(|domain| {
            host == domain
                || host
                    .strip_suffix(domain.as_str())
                    .is_some_and(|rest| rest.ends_with('.'))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groundspan() -> UrlPolicy {
        UrlPolicy::new(&["groundspan.com".to_owned(), "concur.com".to_owned()])
    }

    #[test]
    fn allows_https_on_listed_domains_and_subdomains() {
        let policy = groundspan();
        assert!(policy.allows("https://groundspan.com/logo.png"));
        assert!(policy.allows("https://www.groundspan.com/bookingTool?offer=a%3D%3D"));
        assert!(policy.allows("https://concur.com/book/eco"));
        assert!(policy.allows("https://CONCUR.com./x"));
        assert!(policy.allows(""));
    }

    #[test]
    fn refuses_everything_else() {
        let policy = groundspan();
        for url in [
            "http://groundspan.com/logo.png",
            "https://evilgroundspan.com/",
            "https://groundspan.com.evil.net/",
            "https://evil.net/?groundspan.com",
            "javascript:alert(1)",
            "data:text/html,hi",
            "https://user:pw@groundspan.com/",
            "https://203.0.113.7/",
            "//groundspan.com/x",
            "not a url",
        ] {
            assert!(!policy.allows(url), "{url} should be refused");
        }
    }
}
