//! Genesys Cloud Platform API v2 client: only the calls skill-tuner needs, each typed, each
//! sent through one stack of pacing, auth and retries (see [`transport`]).
//!
//! Every path, query parameter and body follows Genesys' generated SDKs (operations in
//! `MyPureCloud/platform-client-sdk-dotnet` `build/docs/*Api.md`, models in
//! `build/docs/<Model>.md`, version 270.0.0), summed up with their sources in
//! `docs/genesys-api.md`; `tests/contract/genesys-contract.toml` holds the facts we rely on,
//! and `tests/it/sim_contract.rs` checks every request against them. Where no public document
//! states a fact the value is a named constant or a setting, listed in the notes' §9.

pub mod auth;
pub mod error;
pub mod models;
pub mod network;
pub mod pacer;
pub mod region;
pub mod retry;
pub mod shutdown;
pub mod stats;
pub mod transport;

pub use auth::Credentials;
pub use error::ApiError;
pub use network::Network;
pub use region::Endpoints;
pub use retry::RetryPolicy;
pub use stats::{ApiStats, StatsSnapshot};

use futures_util::stream::{self, StreamExt, TryStreamExt};
use models::*;
use reqwest::Method;
use std::sync::Arc;
use std::time::Duration;
use transport::{ApiRequest, Transport};

/// Page size of `GET /api/v2/users` and `GET /api/v2/routing/skills`: the Terraform provider's
/// 500; the maximum is not documented (`docs/genesys-api.md` §4).
pub const USER_PAGE_SIZE: u32 = 500;
/// Page size for one user's skills; every page is followed, so a larger set still reads whole.
/// (The Terraform provider pages with 50; the endpoint's maximum is not documented.)
pub const USER_SKILLS_PAGE_SIZE: u32 = 50;
/// The default of `genesys.bulk_skills_per_call`: the Terraform provider's limit ("restricts
/// skills adds to 50 per call"); the SDK's body schema sets no maximum (`docs/genesys-api.md` §5).
pub const BULK_SKILLS_MAX: usize = 50;
/// The client's pacing, timing and retry-quota defaults. The `[genesys]` settings start from
/// these, so a client built without settings (tests, tools) behaves like a default config.
pub mod defaults {
    use std::time::Duration;

    /// Requests per minute: the real API's default per-token limit.
    pub const RATE_LIMIT_PER_MINUTE: u32 = 300;
    /// All of the allowed rate is ours.
    pub const RATE_SHARE: f64 = 1.0;
    pub const BURST: u32 = 5;
    pub const MAX_CONCURRENCY: usize = 8;
    /// Per attempt (the Go SDK uses 16 s).
    pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(16);
    pub const TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(300);
    /// Retry quota tokens shared by all calls.
    pub const RETRY_BUDGET: u32 = 500;
}

/// Page size of `GET /api/v2/routing/queues`. The SDK documents no maximum (default 25);
/// 100 is accepted by every Genesys listing, and an org has few queues, so the cost is one
/// call per 100 queues.
pub const QUEUE_PAGE_SIZE: u32 = 100;
/// Page size of the skill-group listing (cursor-paged; the SDK's default is 25 and no
/// maximum is documented: 100, as for queues; every page is followed).
pub const SKILL_GROUP_PAGE_SIZE: u32 = 100;
/// Page size for queue members (.NET SDK 270.0.0 `RoutingApi.md`, GetRoutingQueueMembers:
/// "Max value is 100"). Group individuals come in one answer, unpaged.
pub const MEMBER_PAGE_SIZE: u32 = 100;
/// Most `externalTag` values in one workitem query (not documented; conservative).
pub const WORKITEM_TAGS_PER_QUERY: usize = 50;
/// Largest workitem query page (documented: "Maximum of 200").
pub const WORKITEM_PAGE_SIZE: u32 = 200;

/// How to reach and pace one org.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub endpoints: Endpoints,
    pub credentials: Credentials,
    /// The most requests per minute we send (the org's limit can only lower it).
    pub rate_limit_per_minute: u32,
    /// Our share (0 < share ≤ 1) of the rate the API allows the token: less than 1 leaves
    /// the rest to other work on the same OAuth client.
    pub rate_share: f64,
    /// Requests that may go back to back before pacing starts.
    pub burst: u32,
    /// Requests in flight at once.
    pub max_concurrency: usize,
    /// Per attempt (the Go SDK uses 16 s).
    pub request_timeout: Duration,
    /// Refresh the token this long before it expires.
    pub token_refresh_margin: Duration,
    pub retry: RetryPolicy,
    /// Retry quota tokens shared by all calls (5 per retry, 10 per timeout, +1 per success).
    pub retry_budget: u32,
    /// Most skills in one bulk write (`genesys.bulk_skills_per_call`).
    pub bulk_skills_per_call: usize,
    /// Wall-clock time, for `Retry-After` given as an HTTP date.
    pub clock: crate::clock::Clock,
    /// Proxy and extra trust (default: the proxy environment, loopback direct; the OS store).
    pub network: Network,
}

impl ClientConfig {
    pub fn new(endpoints: Endpoints, credentials: Credentials) -> Self {
        Self {
            endpoints,
            credentials,
            rate_limit_per_minute: defaults::RATE_LIMIT_PER_MINUTE,
            rate_share: defaults::RATE_SHARE,
            burst: defaults::BURST,
            max_concurrency: defaults::MAX_CONCURRENCY,
            request_timeout: defaults::REQUEST_TIMEOUT,
            token_refresh_margin: defaults::TOKEN_REFRESH_MARGIN,
            retry: RetryPolicy::default(),
            retry_budget: defaults::RETRY_BUDGET,
            bulk_skills_per_call: BULK_SKILLS_MAX,
            clock: crate::clock::Clock::system(),
            network: Network::default(),
        }
    }
}

/// Which analytics aggregate endpoint to query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateSource {
    Conversations,
    Evaluations,
    Surveys,
}

impl AggregateSource {
    fn path(self) -> &'static str {
        match self {
            AggregateSource::Conversations => "/api/v2/analytics/conversations/aggregates/query",
            AggregateSource::Evaluations => "/api/v2/analytics/evaluations/aggregates/query",
            AggregateSource::Surveys => "/api/v2/analytics/surveys/aggregates/query",
        }
    }
}

/// Aborts the token refresher when the last client handle goes away.
struct Inner {
    transport: Transport,
    /// Most skills per bulk write.
    bulk_skills_per_call: usize,
    refresher: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(handle) = self.refresher.get_mut().ok().and_then(Option::take) {
            handle.abort();
        }
    }
}

/// A cheap-to-clone handle to one org.
#[derive(Clone)]
pub struct GenesysClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for GenesysClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenesysClient")
            .field(
                "api_base",
                &crate::text::redact_userinfo(self.inner.transport.api_base.as_str()),
            )
            .field("auth", &self.inner.transport.auth)
            .finish_non_exhaustive()
    }
}

impl GenesysClient {
    /// Builds the client; sends nothing yet.
    pub fn new(config: ClientConfig) -> Result<Self, ApiError> {
        let cannot_build = |reason: String| ApiError::Invalid {
            endpoint: "client".into(),
            reason: format!("cannot build the HTTP client: {reason}"),
        };
        let builder = reqwest::Client::builder()
            .user_agent(concat!("skill-tuner/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(60));
        let http = config
            .network
            .apply(builder)
            .map_err(|e| cannot_build(e.to_string()))?
            .build()
            .map_err(|e| cannot_build(e.to_string()))?;
        let stats = Arc::new(ApiStats::default());
        let token_url = region::join(&config.endpoints.login_base, "/oauth/token");
        let auth = Arc::new(auth::TokenManager::new(
            http.clone(),
            token_url,
            config.credentials,
            config.token_refresh_margin,
            stats.clone(),
        ));
        let transport = Transport {
            http,
            api_base: config.endpoints.api_base,
            auth,
            policy: config.retry,
            budget: retry::RetryBudget::new(config.retry_budget),
            pacer: pacer::Pacer::new(config.rate_limit_per_minute, config.burst)
                .with_share(config.rate_share),
            permits: tokio::sync::Semaphore::new(config.max_concurrency.max(1)),
            stats,
            request_timeout: config.request_timeout,
            clock: config.clock,
            shutdown: shutdown::Shutdown::default(),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                transport,
                bulk_skills_per_call: config.bulk_skills_per_call,
                refresher: std::sync::Mutex::new(None),
            }),
        })
    }

    fn t(&self) -> &Transport {
        &self.inner.transport
    }

    /// Starts the background token refresher (idempotent). Needs a tokio runtime.
    pub fn start_token_refresher(&self) {
        let mut slot = self
            .inner
            .refresher
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(tokio::spawn(self.t().auth.clone().run_refresher()));
        }
    }

    /// Obtains a token now (start-up check, readiness).
    pub async fn login(&self) -> Result<(), ApiError> {
        self.t().auth.token().await.map(|_| ())
    }

    /// True while the client holds a token that is valid, or can get a new one (the last
    /// token request worked). Readiness follows it.
    pub fn has_token(&self) -> bool {
        self.t().auth.has_token()
    }

    /// Stops the client for good: every wait (pacing, `Retry-After`, backoff) ends now and
    /// no new request is sent; requests already on the wire get their answer. Calls fail
    /// with [`ApiError::Cancelled`]. For process shutdown.
    pub fn shut_down(&self) {
        self.t().shutdown.trigger();
    }

    pub fn client_id(&self) -> &str {
        self.t().auth.client_id()
    }

    /// The HTTP client underneath, with the configured proxy and trust: for the requests to
    /// other places that must leave the machine the same way (the webhook digest).
    pub fn http(&self) -> &reqwest::Client {
        &self.t().http
    }

    /// The counters of every call made so far.
    pub fn stats(&self) -> StatsSnapshot {
        self.t().stats.snapshot()
    }

    /// The most the pacer sends per minute: our share of the ceiling (the window's headers
    /// may allow less).
    pub fn paced_rate_per_minute(&self) -> u32 {
        self.t().pacer.paced_rate_per_minute()
    }

    /// `GET /api/v2/organizations/limits/namespaces/{ns}`: the org's effective limits.
    pub async fn org_limits(&self, namespace: &str) -> Result<Vec<Limit>, ApiError> {
        let request = ApiRequest::get(
            format!(
                "/api/v2/organizations/limits/namespaces/{}",
                encode(namespace)
            ),
            "/api/v2/organizations/limits/namespaces/{ns}",
        );
        let listing: Listing<Limit> = self.t().json(&request).await?;
        Ok(listing.entities)
    }

    /// Lowers the pacing ceiling to the org's per-token limit, if the org reports one.
    /// Returns the limit found.
    pub async fn adopt_org_rate_limit(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<u32>, ApiError> {
        let limits = self.org_limits(namespace).await?;
        let found = limits
            .iter()
            .find(|l| l.key.as_deref() == Some(key))
            .and_then(|l| l.value)
            .and_then(|v| u32::try_from(v).ok())
            .filter(|v| *v > 0);
        if let Some(org_limit) = found {
            let current = self.t().pacer.ceiling_per_minute();
            if current == 0 || org_limit < current {
                self.t().pacer.set_ceiling(org_limit);
            }
        }
        Ok(found)
    }

    /// Every user in `state` (`active` by default), all pages of 500, with skills when asked.
    /// Page 1 tells the page count; the rest are fetched concurrently within the limits.
    pub async fn list_users(
        &self,
        state: &str,
        expand_skills: bool,
    ) -> Result<Vec<User>, ApiError> {
        self.list_users_map(state, expand_skills, Some).await
    }

    /// As [`GenesysClient::list_users`], mapping each user as its page arrives, so a large
    /// roster is never held twice (raw users and what the caller keeps of them).
    pub async fn list_users_map<U>(
        &self,
        state: &str,
        expand_skills: bool,
        map: impl Fn(User) -> Option<U>,
    ) -> Result<Vec<U>, ApiError> {
        let page = |number: u32| {
            let mut request = ApiRequest::get("/api/v2/users".into(), "/api/v2/users")
                .query("pageSize", USER_PAGE_SIZE)
                .query("pageNumber", number)
                .query("state", state);
            if expand_skills {
                request = request.query("expand", "skills");
            }
            request
        };
        self.all_pages_map(page, map).await
    }

    /// `GET /api/v2/users/{id}` (for its `manager`).
    pub async fn get_user(&self, user_id: &str) -> Result<User, ApiError> {
        let request = ApiRequest::get(
            format!("/api/v2/users/{}", encode(user_id)),
            "/api/v2/users/{id}",
        );
        self.t().json(&request).await
    }

    /// The org's routing-skill catalogue.
    pub async fn list_skills(&self) -> Result<Vec<RoutingSkill>, ApiError> {
        self.all_pages(|number| {
            ApiRequest::get("/api/v2/routing/skills".into(), "/api/v2/routing/skills")
                .query("pageSize", USER_PAGE_SIZE)
                .query("pageNumber", number)
        })
        .await
    }

    /// The truth of one user's skills (`expand=skills` is best effort; this is not).
    pub async fn user_skills(&self, user_id: &str) -> Result<Vec<UserRoutingSkill>, ApiError> {
        let path = format!("/api/v2/users/{}/routingskills", encode(user_id));
        self.all_pages(|number| {
            ApiRequest::get(path.clone(), "/api/v2/users/{id}/routingskills")
                .query("pageSize", USER_SKILLS_PAGE_SIZE)
                .query("pageNumber", number)
        })
        .await
    }

    /// [`GenesysClient::user_skills`] as skill id → proficiency: the form every comparison
    /// with a planned or recorded value reads (before a write, in a diff, in reconciliation).
    pub(crate) async fn user_proficiencies(
        &self,
        user_id: &str,
    ) -> Result<std::collections::HashMap<String, f64>, ApiError> {
        let skills = self.user_skills(user_id).await?;
        Ok(skills.into_iter().map(|s| (s.id, s.proficiency)).collect())
    }

    /// Upserts the listed skills with `PATCH …/routingskills/bulk`, 50 per call. Never the
    /// replacing `PUT …/bulk`. Absolute values, so a retried write is harmless.
    /// Returns the user's skills as the last call reported them, and its correlation id.
    pub async fn patch_user_skills(
        &self,
        user_id: &str,
        skills: &[UserRoutingSkillPost],
    ) -> Result<(Vec<UserRoutingSkill>, Option<String>), ApiError> {
        let endpoint = "PATCH /api/v2/users/{id}/routingskills/bulk";
        if let Some(bad) = skills
            .iter()
            .find(|s| !(0.0..=5.0).contains(&s.proficiency))
        {
            return Err(ApiError::Invalid {
                endpoint: endpoint.into(),
                reason: format!(
                    "proficiency {} of skill {} is outside 0.0–5.0",
                    bad.proficiency, bad.id
                ),
            });
        }
        let path = format!("/api/v2/users/{}/routingskills/bulk", encode(user_id));
        let mut last = (Vec::new(), None);
        for chunk in skills.chunks(self.inner.bulk_skills_per_call.max(1)) {
            let request = ApiRequest::get(path.clone(), "/api/v2/users/{id}/routingskills/bulk")
                .with_json(Method::PATCH, &chunk)?;
            last = match self
                .t()
                .json_traced::<Listing<UserRoutingSkill>>(&request)
                .await
            {
                Ok((listing, correlation)) => (listing.entities, correlation),
                // The 2xx confirms the write; the body only echoes the skills (apply re-reads
                // before every write and ignores it). An unreadable echo is therefore still a
                // success: reporting a failure would make the ledger disagree with the org.
                Err(ApiError::Decode {
                    reason,
                    correlation_id,
                    ..
                }) => {
                    tracing::warn!(%reason, correlation_id = correlation_id.as_deref().unwrap_or("-"), "skills written, but the answer was unreadable; counting the write as applied");
                    (Vec::new(), correlation_id)
                }
                Err(e) => return Err(e),
            };
        }
        Ok(last)
    }

    /// Every queue of the org, in pages of [`QUEUE_PAGE_SIZE`] (page 1 tells the count).
    pub async fn list_queues(&self) -> Result<Vec<RoutingQueue>, ApiError> {
        self.all_pages(|number| {
            ApiRequest::get("/api/v2/routing/queues".into(), "/api/v2/routing/queues")
                .query("pageSize", QUEUE_PAGE_SIZE)
                .query("pageNumber", number)
        })
        .await
    }

    /// Every skill group (`SkillGroupDefinition`s: no conditions), following the cursor in
    /// each page's `nextUri` (`after`) until a page carries none.
    pub async fn list_skill_groups(&self) -> Result<Vec<SkillGroup>, ApiError> {
        let mut groups: Vec<SkillGroup> = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut request = ApiRequest::get(
                "/api/v2/routing/skillgroups".into(),
                "/api/v2/routing/skillgroups",
            )
            .query("pageSize", SKILL_GROUP_PAGE_SIZE);
            if let Some(cursor) = &after {
                request = request.query("after", cursor);
            }
            let page: Listing<SkillGroup> = self.t().json(&request).await?;
            let empty = page.entities.is_empty();
            groups.extend(page.entities);
            let next = page.next_uri.as_deref().and_then(cursor_after);
            // A server that repeats its cursor or sends an empty page cannot loop us.
            if empty || next.is_none() || next == after {
                return Ok(groups);
            }
            after = next;
        }
    }

    /// One skill group with its `skillConditions`.
    pub async fn skill_group(&self, id: &str) -> Result<SkillGroup, ApiError> {
        let request = ApiRequest::get(
            format!("/api/v2/routing/skillgroups/{}", encode(id)),
            "/api/v2/routing/skillgroups/{id}",
        );
        self.t().json(&request).await
    }

    /// User ids of a queue's members. `QueueMemberEntityListing` has no `total` or
    /// `pageCount`: the pages are followed while each carries a `nextUri`.
    pub async fn queue_member_ids(&self, queue_id: &str) -> Result<Vec<String>, ApiError> {
        let path = format!("/api/v2/routing/queues/{}/members", encode(queue_id));
        let members: Vec<QueueMember> = self
            .all_pages(|number| {
                ApiRequest::get(path.clone(), "/api/v2/routing/queues/{id}/members")
                    .query("pageSize", MEMBER_PAGE_SIZE)
                    .query("pageNumber", number)
            })
            .await?;
        Ok(members
            .into_iter()
            .map(|m| m.user.map_or(m.id, |u| u.id))
            .collect())
    }

    /// User ids of a group's individual members. `GET /api/v2/groups/{id}/individuals` takes
    /// no query parameters and answers every individual at once (.NET SDK 270.0.0,
    /// `build/docs/GroupsApi.md`, GetGroupIndividuals: "Get all individuals associated with
    /// the group").
    pub async fn group_member_ids(&self, group_id: &str) -> Result<Vec<String>, ApiError> {
        let request = ApiRequest::get(
            format!("/api/v2/groups/{}/individuals", encode(group_id)),
            "/api/v2/groups/{id}/individuals",
        );
        let listing: Listing<User> = self.t().json(&request).await?;
        Ok(listing.entities.into_iter().map(|u| u.id).collect())
    }

    /// One synchronous aggregate query (read-only, so retried like a GET).
    pub async fn aggregates(
        &self,
        source: AggregateSource,
        query: &AggregationQuery,
    ) -> Result<AggregateResponse, ApiError> {
        let request =
            ApiRequest::get(source.path().into(), source.path()).with_json(Method::POST, query)?;
        self.t().json(&request).await
    }

    /// `POST /api/v2/taskmanagement/workitems`. Not idempotent: only retried when the server
    /// cannot have acted (429, connection refused). Callers de-duplicate by `externalTag`.
    pub async fn create_workitem(&self, body: &WorkitemCreate) -> Result<Workitem, ApiError> {
        let request = ApiRequest::get(
            "/api/v2/taskmanagement/workitems".into(),
            "/api/v2/taskmanagement/workitems",
        )
        .with_json(Method::POST, body)?
        .not_idempotent();
        self.t().json(&request).await
    }

    /// Workitems whose `externalTag` is one of `tags` (batched, all pages).
    pub async fn workitems_by_external_tag(
        &self,
        worktype_id: &str,
        tags: &[String],
    ) -> Result<Vec<Workitem>, ApiError> {
        let mut found = Vec::new();
        for batch in tags.chunks(WORKITEM_TAGS_PER_QUERY) {
            let mut after = None;
            loop {
                let body = WorkitemQuery {
                    // "At least one EQ filter on the workbinId, assigneeId, queueId or typeId
                    // attributes. A maximum of three filters are allowed." (.NET SDK 270.0.0,
                    // `build/docs/TaskManagementApi.md`, PostTaskmanagementWorkitemsQuery);
                    // our review workitems all have our worktype. Two filters.
                    filters: vec![
                        WorkitemFilter {
                            name: "typeId".into(),
                            kind: "String".into(),
                            operator: "EQ".into(),
                            values: vec![worktype_id.to_string()],
                        },
                        WorkitemFilter {
                            name: "externalTag".into(),
                            kind: "String".into(),
                            operator: "IN".into(),
                            values: batch.to_vec(),
                        },
                    ],
                    page_size: WORKITEM_PAGE_SIZE,
                    after: after.take(),
                };
                let request = ApiRequest::get(
                    "/api/v2/taskmanagement/workitems/query".into(),
                    "/api/v2/taskmanagement/workitems/query",
                )
                .with_json(Method::POST, &body)?;
                let page: WorkitemQueryResponse = self.t().json(&request).await?;
                let more = page
                    .after
                    .filter(|a| !a.is_empty() && !page.entities.is_empty());
                found.extend(page.entities);
                match more {
                    Some(cursor) => after = Some(cursor),
                    None => break,
                }
            }
        }
        Ok(found)
    }

    /// `GET /api/v2/taskmanagement/workitems/{id}`.
    pub async fn workitem(&self, id: &str) -> Result<Workitem, ApiError> {
        let request = ApiRequest::get(
            format!("/api/v2/taskmanagement/workitems/{}", encode(id)),
            "/api/v2/taskmanagement/workitems/{id}",
        );
        self.t().json(&request).await
    }

    /// The statuses of a worktype (to tell "approved" from "rejected" closes).
    pub async fn worktype_statuses(
        &self,
        worktype_id: &str,
    ) -> Result<Vec<WorkitemStatus>, ApiError> {
        let request = ApiRequest::get(
            format!(
                "/api/v2/taskmanagement/worktypes/{}/statuses",
                encode(worktype_id)
            ),
            "/api/v2/taskmanagement/worktypes/{id}/statuses",
        );
        let listing: Listing<WorkitemStatus> = self.t().json(&request).await?;
        Ok(listing.entities)
    }

    /// Fetches page 1, then the remaining pages concurrently (bounded by the client's limits).
    async fn all_pages<T, F>(&self, page: F) -> Result<Vec<T>, ApiError>
    where
        T: serde::de::DeserializeOwned,
        F: Fn(u32) -> ApiRequest,
    {
        self.all_pages_map(page, Some).await
    }

    /// As [`GenesysClient::all_pages`], mapping each entity as its page arrives (in order).
    async fn all_pages_map<T, U, F, M>(&self, page: F, map: M) -> Result<Vec<U>, ApiError>
    where
        T: serde::de::DeserializeOwned,
        F: Fn(u32) -> ApiRequest,
        M: Fn(T) -> Option<U>,
    {
        let first: Listing<T> = self.t().json(&page(1)).await?;
        // `pageCount` where the listing has it (`UserEntityListing`, `SkillEntityListing`,
        // `UserSkillEntityListing`), else derived from `total` and `pageSize`; a listing
        // with neither (`QueueMemberEntityListing`) is followed page by page while it
        // carries a `nextUri`.
        let page_count = first.page_count.or_else(|| {
            let size = u64::from(first.page_size.filter(|s| *s > 0)?);
            u32::try_from(first.total?.div_ceil(size)).ok()
        });
        let mut more = first.next_uri.is_some();
        // Sized from the reported total: growing (and then shrinking) a Vec of 100 000
        // entries would briefly hold two copies.
        let total = first
            .total
            .and_then(|t| usize::try_from(t).ok())
            .unwrap_or(0);
        let mut items: Vec<U> = Vec::with_capacity(total.min(1_000_000));
        items.extend(first.entities.into_iter().filter_map(&map));
        match page_count {
            Some(count) if count > 1 => {
                let width = self.t().permits.available_permits().max(1);
                let mut rest = stream::iter(2..=count)
                    .map(|n| {
                        let request = page(n);
                        async move { self.t().json::<Listing<T>>(&request).await }
                    })
                    .buffered(width);
                while let Some(listing) = rest.try_next().await? {
                    items.extend(listing.entities.into_iter().filter_map(&map));
                }
            }
            Some(_) => {}
            None => {
                // No page count: the next page while the last one carried a `nextUri` (and
                // was not empty, so a server that always sends one cannot loop us forever).
                let mut number = 1;
                while more {
                    number += 1;
                    let next: Listing<T> = self.t().json(&page(number)).await?;
                    more = !next.entities.is_empty() && next.has_more(number);
                    items.extend(next.entities.into_iter().filter_map(&map));
                }
            }
        }
        Ok(items)
    }
}

/// Percent-encodes one path segment (ids are UUIDs, but never trust data).
fn encode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}

/// The `after` cursor of a cursor listing's `nextUri` (a path with a query), decoded.
fn cursor_after(next_uri: &str) -> Option<String> {
    let url = reqwest::Url::parse("http://host.invalid")
        .ok()?
        .join(next_uri)
        .ok()?;
    url.query_pairs()
        .find(|(k, _)| k == "after")
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty())
}
