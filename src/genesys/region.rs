//! Genesys Cloud regions and the base URLs derived from them.
//!
//! The region table is the one every official SDK ships (the .NET SDK's
//! `build/src/PureCloudPlatform.Client.V2/Client/PureCloudRegionHosts.cs`); the login host is
//! always `login.<domain>` and the API host `api.<domain>`.

use reqwest::Url;

/// `(region name, domain)` for every public Genesys Cloud region.
pub const REGIONS: &[(&str, &str)] = &[
    ("us-east-1", "mypurecloud.com"),
    ("us-east-2", "use2.us-gov-pure.cloud"),
    ("us-west-2", "usw2.pure.cloud"),
    ("ca-central-1", "cac1.pure.cloud"),
    ("sa-east-1", "sae1.pure.cloud"),
    ("mx-central-1", "mxc1.pure.cloud"),
    ("eu-west-1", "mypurecloud.ie"),
    ("eu-west-2", "euw2.pure.cloud"),
    ("eu-central-1", "mypurecloud.de"),
    ("eu-central-2", "euc2.pure.cloud"),
    ("me-central-1", "mec1.pure.cloud"),
    ("ap-south-1", "aps1.pure.cloud"),
    ("ap-northeast-1", "mypurecloud.jp"),
    ("ap-northeast-2", "apne2.pure.cloud"),
    ("ap-northeast-3", "apne3.pure.cloud"),
    ("ap-southeast-1", "apse1.pure.cloud"),
    ("ap-southeast-2", "mypurecloud.com.au"),
    ("eusc-de-east-1", "edee1.eusc-pure.cloud"),
];

/// Why a region or base URL was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegionError {
    #[error("unknown region `{0}`: expected a region name (e.g. `eu-west-1` or `eu_west_1`) or a domain (e.g. `mypurecloud.ie`); known: {known}", known = known_regions())]
    Unknown(String),
    #[error("`{url}` is not a valid base URL: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("`{0}` uses plain http to a host that is not loopback; set `allow_insecure_http = true` to permit it")]
    InsecureHttp(String),
}

fn known_regions() -> String {
    REGIONS
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Resolves a region to its domain, in every spelling Genesys' own tools accept, ignoring
/// case and surrounding blanks:
///
/// - the AWS region name (`eu-west-1`): the Terraform provider's `aws_region` and
///   `GENESYSCLOUD_REGION`, the `gc` CLI's `environment`;
/// - the same name with underscores (`eu_west_1`, `EU_WEST_1`): the SDKs' region constants
///   (Go `platformclientv2`, Python and Java `PureCloudRegionHosts`);
/// - the domain (`mypurecloud.ie`): the CLI's `environment`, the JavaScript SDK's
///   `setEnvironment`.
pub fn domain_of(region: &str) -> Result<&'static str, RegionError> {
    let wanted = region.trim().to_ascii_lowercase();
    let as_name = wanted.replace('_', "-");
    REGIONS
        .iter()
        .find(|(name, domain)| *name == as_name || *domain == wanted)
        .map(|(_, domain)| *domain)
        .ok_or_else(|| RegionError::Unknown(region.to_string()))
}

/// The two base URLs a client talks to.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Where `POST /oauth/token` lives.
    pub login_base: Url,
    /// Where `/api/v2/...` lives.
    pub api_base: Url,
}

impl std::fmt::Debug for Endpoints {
    /// Without any `user:password@` (a `Url`'s own `Debug` shows the password).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |u: &Url| crate::text::redact_userinfo(u.as_str()).into_owned();
        f.debug_struct("Endpoints")
            .field("login_base", &shown(&self.login_base))
            .field("api_base", &shown(&self.api_base))
            .finish()
    }
}

impl Endpoints {
    /// Base URLs for a region, each optionally overridden (simulator, tests, proxies).
    pub fn resolve(
        region: &str,
        login_override: Option<&str>,
        api_override: Option<&str>,
        allow_insecure_http: bool,
    ) -> Result<Self, RegionError> {
        let derived = |prefix: &str| -> Result<String, RegionError> {
            Ok(format!("https://{prefix}.{}", domain_of(region)?))
        };
        let login = match login_override {
            Some(url) => url.to_string(),
            None => derived("login")?,
        };
        let api = match api_override {
            Some(url) => url.to_string(),
            None => derived("api")?,
        };
        Ok(Self {
            login_base: parse_base(&login, allow_insecure_http)?,
            api_base: parse_base(&api, allow_insecure_http)?,
        })
    }
}

/// Parses a base URL and refuses plain http unless the host is loopback or it is allowed.
pub fn parse_base(raw: &str, allow_insecure_http: bool) -> Result<Url, RegionError> {
    // The URL is echoed in the error: never with its `user:password@`.
    let shown = crate::text::redact_userinfo(raw).into_owned();
    let bad = |reason: &str| RegionError::BadUrl {
        url: shown.clone(),
        reason: reason.to_string(),
    };
    let mut url = Url::parse(raw.trim()).map_err(|e| bad(&e.to_string()))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_insecure_http || is_loopback(&url) => {}
        "http" => return Err(RegionError::InsecureHttp(shown)),
        other => return Err(bad(&format!("scheme `{other}` is not http(s)"))),
    }
    if url.host_str().is_none() {
        return Err(bad("it has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("a base URL takes no query or fragment"));
    }
    // Normalise to no trailing slash so that `base + "/api/v2/..."` is always right.
    let trimmed = url.path().trim_end_matches('/').to_string();
    url.set_path(&trimmed);
    Ok(url)
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Joins a base URL (no trailing slash) and an absolute path.
pub fn join(base: &Url, path: &str) -> String {
    format!("{}{}", base.as_str().trim_end_matches('/'), path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_names_and_domains_resolve() {
        let e = Endpoints::resolve("eu-west-1", None, None, false).unwrap();
        assert_eq!(e.login_base.as_str(), "https://login.mypurecloud.ie/");
        assert_eq!(e.api_base.as_str(), "https://api.mypurecloud.ie/");
        let e = Endpoints::resolve("usw2.pure.cloud", None, None, false).unwrap();
        assert_eq!(e.api_base.host_str(), Some("api.usw2.pure.cloud"));
        assert_eq!(REGIONS.len(), 18);
    }

    #[test]
    fn aws_names_resolve_in_any_case() {
        assert_eq!(domain_of("eu-west-1"), Ok("mypurecloud.ie"));
        assert_eq!(domain_of("EU-West-1"), Ok("mypurecloud.ie"));
        assert_eq!(domain_of(" ap-southeast-2 "), Ok("mypurecloud.com.au"));
        assert_eq!(domain_of("eusc-de-east-1"), Ok("edee1.eusc-pure.cloud"));
    }

    #[test]
    fn sdk_constant_spellings_resolve() {
        assert_eq!(domain_of("eu_central_2"), Ok("euc2.pure.cloud"));
        assert_eq!(domain_of("us_east_1"), Ok("mypurecloud.com"));
        assert_eq!(domain_of("US_EAST_2"), Ok("use2.us-gov-pure.cloud"));
        assert_eq!(domain_of("Ap_Northeast_3"), Ok("apne3.pure.cloud"));
        // Every region has its underscore form.
        for (name, domain) in REGIONS {
            assert_eq!(domain_of(&name.replace('-', "_")), Ok(*domain), "{name}");
        }
    }

    #[test]
    fn domains_resolve_in_any_case() {
        assert_eq!(domain_of("mypurecloud.ie"), Ok("mypurecloud.ie"));
        assert_eq!(domain_of("MyPureCloud.DE"), Ok("mypurecloud.de"));
        assert_eq!(domain_of("usw2.pure.cloud"), Ok("usw2.pure.cloud"));
        // A domain is matched as written: underscores are not a domain spelling.
        assert!(domain_of("usw2_pure_cloud").is_err());
        assert!(domain_of("eu-moon-1").is_err());
        assert!(domain_of("").is_err());
    }

    #[test]
    fn unknown_region_lists_known_ones() {
        let err = Endpoints::resolve("eu-moon-1", None, None, false).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("eu-moon-1") && text.contains("eu-west-1"),
            "{text}"
        );
    }

    #[test]
    fn plain_http_only_to_loopback_unless_allowed() {
        assert!(parse_base("http://127.0.0.1:8080", false).is_ok());
        assert!(parse_base("http://localhost:1/", false).is_ok());
        assert!(parse_base("http://[::1]:1", false).is_ok());
        assert_eq!(
            parse_base("http://proxy.corp:80", false),
            Err(RegionError::InsecureHttp("http://proxy.corp:80".into()))
        );
        assert!(parse_base("http://proxy.corp:80", true).is_ok());
        assert!(parse_base("ftp://x", true).is_err());
    }

    #[test]
    fn overrides_win_and_join_is_clean() {
        let e = Endpoints::resolve(
            "nowhere",
            Some("http://127.0.0.1:9/"),
            Some("http://127.0.0.1:9/"),
            false,
        );
        // Both overridden: the region is never consulted.
        let e = e.unwrap();
        assert_eq!(
            join(&e.api_base, "/api/v2/users"),
            "http://127.0.0.1:9/api/v2/users"
        );
    }
}
