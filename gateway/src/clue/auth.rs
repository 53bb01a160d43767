//! Bearer tokens, roles and site scopes.
//!
//! A token is 32 random bytes shown once (`gateway token create`); only its SHA-256 is stored,
//! with a role and the sites it may see. Every request presents `Authorization: Bearer <token>`;
//! [`Authenticator::principal`] turns it into who is asking, the [`Principal`] (401 when
//! missing or unknown; the axum extractor that calls it is `crate::http::auth`). Handlers then
//! ask the principal what it may do (403 otherwise) and pass its site scope down to the store
//! so data of other sites is never even read.
//! Tokens are never logged; the audit records the token id and role.
//!
//! A device token may also be bound to one device (`token create --role device --device CAM`):
//! it then speaks only for that camera id, so a camera that leaks its token cannot post frames
//! or re-enrol the reference view of another camera on its site. A device token without a
//! binding speaks for every device of its sites (a relay or video recorder that uploads for
//! many cameras); issue one bound token per camera where cameras post for themselves. A new
//! device token must say which it is: bound (`--device CAM`) or a relay (`--relay`), so an
//! unbound token is a choice the `token_created` audit entry records (`"relay": true`), not a
//! default. Tokens issued before that rule are unbound; the gateway counts the unbound ones at
//! start (`device_tokens_unbound`) and warns.
//!
//! A token may also be scoped to a unit of `[org]` (`--unit xihu`) and/or a department
//! (`--department urban-management`): its sites are then its unit's scope (see
//! `clue::org::scope`), taken from the configuration at every request, and a department token
//! sees only the clues its department leads or assists.

use super::audit::sha256_hex;
use super::lifecycle::Action;
use axum::http::HeaderValue;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Device,
    DroneOperator,
    Inspector,
    Supervisor,
    Platform,
    Admin,
    /// Read-only oversight from outside the handling (prosecutors, inspectors of the
    /// inspectors): reads everything in its sites, including the audit log and the oversight
    /// warnings, and acts on nothing.
    Auditor,
    /// An owner-notice provider (an SMS or letter service): posts receipts for the notices
    /// of the one channel its token names (`token create --role notifier --channel sms`) and
    /// reads nothing, not even the notices it posts receipts for.
    Notifier,
}

impl Role {
    pub(crate) const ALL: [Role; 8] = [
        Role::Device,
        Role::DroneOperator,
        Role::Inspector,
        Role::Supervisor,
        Role::Platform,
        Role::Admin,
        Role::Auditor,
        Role::Notifier,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Device => "device",
            Role::DroneOperator => "drone_operator",
            Role::Inspector => "inspector",
            Role::Supervisor => "supervisor",
            Role::Platform => "platform",
            Role::Admin => "admin",
            Role::Auditor => "auditor",
            Role::Notifier => "notifier",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// List, detail, audit trail, stream and statistics of clues.
    pub(crate) fn may_read_clues(self) -> bool {
        matches!(
            self,
            Role::Inspector | Role::Supervisor | Role::Platform | Role::Admin | Role::Auditor
        )
    }

    /// Any lifecycle action at all (the dashboard shows the action form only then).
    pub(crate) fn may_work_clues(self) -> bool {
        matches!(
            self,
            Role::Inspector | Role::Supervisor | Role::Platform | Role::Admin
        )
    }

    /// Oversight warnings: supervisors, admins and auditors read them.
    pub(crate) fn may_read_warnings(self) -> bool {
        matches!(self, Role::Supervisor | Role::Admin | Role::Auditor)
    }

    /// Inspectors work clues; decisions above that (assign, close, reopen) are supervisors',
    /// the central platform's and admins'.
    pub(crate) fn may_act(self, action: &Action) -> bool {
        match self {
            Role::Supervisor | Role::Platform | Role::Admin => true,
            Role::Inspector => matches!(
                action,
                Action::Claim { .. }
                    | Action::Transfer { .. }
                    | Action::Resolve { .. }
                    | Action::Dismiss { .. }
                    | Action::Comment { .. }
                    | Action::NotifyOwner { .. }
                    | Action::SendOwnerNotice { .. }
                    | Action::OwnerResponse { .. }
                    | Action::Decide { .. }
            ),
            Role::Device | Role::DroneOperator | Role::Auditor | Role::Notifier => false,
        }
    }

    /// `POST /api/v1/clues`: clues raised by the central platform (or injected by an admin).
    pub(crate) fn may_create_clues(self) -> bool {
        matches!(self, Role::Platform | Role::Admin)
    }

    /// Verify and export the audit log.
    pub(crate) fn may_verify_audit(self) -> bool {
        matches!(
            self,
            Role::Supervisor | Role::Platform | Role::Admin | Role::Auditor
        )
    }
}

/// A stored token (never the token itself).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRecord {
    pub id: i64,
    /// SHA-256 (hex) of the token.
    pub hash: String,
    pub role: Role,
    pub sites: Vec<String>,
    pub name: Option<String>,
    /// The one device this token speaks for (`None`: every device of its sites).
    pub device: Option<String>,
    /// The unit of `[org]` whose scope the token sees (`None`: its sites only).
    pub unit: Option<String>,
    /// The department whose clues (lead or assisting) the token sees (`None`: every clue).
    pub department: Option<String>,
    /// The owner-notice channel a notifier token posts receipts for.
    pub channel: Option<String>,
}

/// What a new token may do: its role, sites, holder and, for a device token, the one device
/// it is bound to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenGrant<'a> {
    pub role: Role,
    pub sites: &'a [String],
    pub name: Option<&'a str>,
    pub device: Option<&'a str>,
    /// A unit of `[org]` (checked against the configuration by the caller, see
    /// `Org::check_grant`).
    pub unit: Option<&'a str>,
    pub department: Option<&'a str>,
    /// A device token deliberately bound to no camera: it speaks for every device of its
    /// sites (a relay or recorder). A device token is either bound (`device`) or a relay.
    pub relay: bool,
    /// The owner-notice channel (`[[clues.owner_notify.channels]] name`) a notifier token
    /// posts receipts for; required for notifiers and for them only (the caller checks the
    /// name against the configuration).
    pub channel: Option<&'a str>,
}

#[derive(Debug, Error)]
pub enum TokenStoreError {
    #[error("token store: {0}")]
    Backend(String),
    #[error("token refused: {0}")]
    Invalid(String),
}

/// Where token hashes live (SQLite now, PostgreSQL later).
pub trait TokenStore: Send + Sync {
    /// Stores `hash` with what `grant` allows and audits the creation; returns the id.
    fn insert_token(
        &self,
        hash: &str,
        grant: &TokenGrant<'_>,
        now_ms: i64,
    ) -> Result<i64, TokenStoreError>;
    fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, TokenStoreError>;
}

/// The SHA-256 under which a token is stored.
pub fn token_hash(token: &str) -> String {
    sha256_hex(&[token.as_bytes()])
}

/// Creates a token with `role` limited to `sites`; returns `(id, token)`. The token is not
/// kept anywhere: show it once. The demo's and the tests' shorthand (the CLI grants through
/// [`create_token_for`]).
#[cfg(any(test, feature = "demo"))]
pub(crate) fn create_token(
    store: &dyn TokenStore,
    role: Role,
    sites: &[String],
    name: Option<&str>,
    now_ms: i64,
) -> Result<(i64, String), TokenStoreError> {
    let grant = TokenGrant {
        role,
        sites,
        name,
        device: None,
        unit: None,
        department: None,
        relay: false,
        channel: None,
    };
    create_token_for(store, &grant, now_ms)
}

/// `create_token` with everything a grant can say, the device binding included. A binding
/// or a relay is for device tokens only, and a device token must be one of the two.
pub fn create_token_for(
    store: &dyn TokenStore,
    grant: &TokenGrant<'_>,
    now_ms: i64,
) -> Result<(i64, String), TokenStoreError> {
    match (grant.role, grant.device.is_some(), grant.relay) {
        (Role::Device, false, false) => {
            return Err(TokenStoreError::Invalid(
                "a device token is bound to its camera (--device CAM) or, deliberately, a relay \
                 that speaks for every camera of its sites (--relay)"
                    .into(),
            ));
        }
        (_, true, true) => {
            return Err(TokenStoreError::Invalid(
                "a token is either bound to one device (--device) or a relay (--relay)".into(),
            ));
        }
        (role, _, true) if role != Role::Device => {
            return Err(TokenStoreError::Invalid(format!(
                "only device tokens are relays, not {}",
                role.as_str()
            )));
        }
        _ => {}
    }
    match (grant.role, grant.channel) {
        (Role::Notifier, None) => {
            return Err(TokenStoreError::Invalid(
                "a notifier token names the owner-notice channel whose receipts it posts \
                 (--channel NAME)"
                    .into(),
            ));
        }
        (Role::Notifier, Some(c)) => {
            if !crate::clue::owner_notify::is_name(c) {
                return Err(TokenStoreError::Invalid(
                    "a channel name is 1..=64 letters, digits, - or _".into(),
                ));
            }
            if grant.department.is_some() {
                return Err(TokenStoreError::Invalid(
                    "a notifier token is scoped to its channel, not a department".into(),
                ));
            }
        }
        (role, Some(_)) => {
            return Err(TokenStoreError::Invalid(format!(
                "only notifier tokens name a channel, not {}",
                role.as_str()
            )));
        }
        (_, None) => {}
    }
    if grant.role == Role::Device && grant.unit.is_some() {
        return Err(TokenStoreError::Invalid(
            "a device token names its sites (--sites), not a unit (--unit): a unit's scope \
             would let it speak for the same camera id at every site of the unit"
                .into(),
        ));
    }
    if let Some(device) = grant.device {
        if grant.role != Role::Device {
            return Err(TokenStoreError::Invalid(format!(
                "only device tokens are bound to a device, not {}",
                grant.role.as_str()
            )));
        }
        if device.is_empty() || device.len() > 128 || device.chars().any(char::is_control) {
            return Err(TokenStoreError::Invalid(
                "a device id is 1 to 128 printable characters".into(),
            ));
        }
        // Camera ids are unique within a site only: bound at several sites, a leaked token
        // could speak for (and re-enrol the reference of) that id at every one of them.
        if grant.sites.len() != 1 {
            return Err(TokenStoreError::Invalid(format!(
                "a token bound to a device (--device {device}) names exactly one site \
                 (--sites SITE), not {}",
                grant.sites.len()
            )));
        }
    }
    for (what, v) in [("unit", grant.unit), ("department", grant.department)] {
        if let Some(v) = v {
            crate::clue::org::config::check_id(what, v)
                .map_err(|e| TokenStoreError::Invalid(e.to_string()))?;
        }
    }
    let bytes: [u8; 32] = rand::random();
    let token = format!("gwt_{}", super::audit::hex(&bytes));
    let id = store.insert_token(&token_hash(&token), grant, now_ms)?;
    Ok((id, token))
}

/// Who is asking: from a valid bearer token.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Principal {
    pub token_id: i64,
    pub role: Role,
    /// The sites it sees: the token's own, or its unit's scope (narrowed to the token's own
    /// when it lists some).
    pub sites: Vec<String>,
    pub name: Option<String>,
    /// The one device this token speaks for (`None`: every device of its sites).
    pub device: Option<String>,
    /// The unit it is scoped to (its sites are the unit's scope).
    pub unit: Option<String>,
    /// The department whose clues it sees (lead or assisting).
    pub department: Option<String>,
    /// The owner-notice channel a notifier token posts receipts for.
    pub channel: Option<String>,
}

impl Principal {
    /// The name recorded in the audit log and as assignee: `ann#3` or `inspector#3`.
    pub(crate) fn actor(&self) -> String {
        format!(
            "{}#{}",
            self.name.as_deref().unwrap_or(self.role.as_str()),
            self.token_id
        )
    }

    /// Every site: an admin not scoped to a unit.
    fn everywhere(&self) -> bool {
        self.role == Role::Admin && self.unit.is_none()
    }

    /// `None`: every site (an admin without a unit). `Some(sites)`: only those.
    pub(crate) fn scope(&self) -> Option<Vec<String>> {
        (!self.everywhere()).then(|| self.sites.clone())
    }

    pub(crate) fn sees(&self, site: &str) -> bool {
        self.everywhere() || self.sites.iter().any(|s| s == site)
    }

    /// An inspector disposes of or hands on only clues that are theirs or nobody's yet: whether
    /// `action` on a clue assigned to `assignee` is refused for that reason (the clue actions,
    /// and maintenance works dismissing the clues they explain).
    pub(crate) fn blocked_by_assignee(
        &self,
        action: &super::lifecycle::Action,
        assignee: Option<&str>,
    ) -> bool {
        use super::lifecycle::Action;
        self.role == Role::Inspector
            && matches!(
                action,
                Action::Resolve { .. }
                    | Action::Dismiss { .. }
                    | Action::Transfer { .. }
                    | Action::Decide { .. }
            )
            && assignee.is_some_and(|a| a != self.actor())
    }

    /// Whether the token sees `clue`: its site, and for a department token a clue its
    /// department leads or assists.
    pub(crate) fn sees_clue(&self, clue: &super::model::Clue) -> bool {
        self.sees(&clue.subject.site)
            && self.department.as_deref().is_none_or(|d| {
                clue.department.as_deref() == Some(d) || clue.assisting.iter().any(|a| a == d)
            })
    }

    /// 403 unless `allowed`.
    pub(crate) fn require(&self, allowed: bool, what: &str) -> Result<(), AuthError> {
        if allowed {
            Ok(())
        } else {
            Err(AuthError::Forbidden(format!(
                "role {} may not {what}",
                self.role.as_str()
            )))
        }
    }

    /// 403 unless the token may speak for `device` (a bound token: only its own device).
    pub(crate) fn require_device(&self, device: &str) -> Result<(), AuthError> {
        match &self.device {
            Some(own) if own != device => Err(AuthError::Forbidden(
                "this token is bound to another device".into(),
            )),
            _ => Ok(()),
        }
    }

    /// 403 unless the token covers `site`.
    pub(crate) fn require_site(&self, site: &str) -> Result<(), AuthError> {
        if self.sees(site) {
            Ok(())
        } else {
            Err(AuthError::Forbidden("outside this token's sites".into()))
        }
    }
}

#[derive(Debug, Error)]
pub(crate) enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("invalid bearer token")]
    Invalid,
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("authentication backend failed")]
    Backend,
    #[error("too many failed logins; retry later")]
    RateLimited,
}

/// What the extractor needs from the router state.
#[derive(Clone)]
pub(crate) struct Authenticator {
    pub tokens: Arc<dyn TokenStore>,
    pub failures: Arc<FailedLogins>,
    /// The organisation a unit token's sites come from.
    pub org: Arc<super::org::Org>,
}

/// Failed logins per presented-token prefix in a fixed window; past the limit, tokens with
/// that prefix get 429 until the window ends.
///
/// Why per prefix and not per client address: behind a reverse proxy (or NAT) every client
/// shares one address, so one misbehaving client would lock every valid token out. A valid
/// token has its own 16-hex-digit prefix (64 random bits): it shares a bucket only with
/// guesses that already know that prefix. Requests without any token are refused (401)
/// without a lookup and are not counted. Guessing a 256-bit token is hopeless anyway; this
/// keeps a client that repeats a wrong or revoked token from hammering the token store.
pub(crate) struct FailedLogins {
    window_ms: i64,
    limit: u32,
    seen: std::sync::Mutex<std::collections::HashMap<String, (i64, u32)>>,
}

/// Characters of a presented token that key its failure bucket (`gwt_` + 16 hex digits).
const BUCKET_PREFIX: usize = 20;

/// The failure bucket of a presented token: its first characters (never the whole token).
fn bucket(token: &str) -> String {
    token.chars().take(BUCKET_PREFIX).collect()
}

impl FailedLogins {
    pub(crate) fn new(limit: u32, window_ms: i64) -> FailedLogins {
        FailedLogins {
            window_ms,
            limit,
            seen: Default::default(),
        }
    }

    fn blocked(&self, token: &str, now_ms: i64) -> bool {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.get(&bucket(token))
            .is_some_and(|(start, n)| now_ms - start < self.window_ms && *n >= self.limit)
    }

    fn failed(&self, token: &str, now_ms: i64) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() > 10_000 {
            let window = self.window_ms;
            seen.retain(|_, (start, _)| now_ms - *start < window);
        }
        let e = seen.entry(bucket(token)).or_insert((now_ms, 0));
        if now_ms - e.0 >= self.window_ms {
            *e = (now_ms, 0);
        }
        e.1 = e.1.saturating_add(1);
    }
}

impl Default for FailedLogins {
    /// 20 failures a minute per token prefix.
    fn default() -> Self {
        FailedLogins::new(20, 60_000)
    }
}

impl Authenticator {
    /// Who presents `authorization` (the request's `Authorization` header, `Bearer <token>`):
    /// `Missing` without one, `Invalid` for a malformed or unknown token, `RateLimited` for a
    /// prefix past its failures. The HTTP extractor is `crate::http::auth`.
    pub(crate) async fn principal(
        &self,
        authorization: Option<&HeaderValue>,
    ) -> Result<Principal, AuthError> {
        let auth = self;
        let now = crate::clock::now_ms();
        let value = authorization
            .ok_or(AuthError::Missing)?
            .to_str()
            .map_err(|_| AuthError::Invalid)?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or(AuthError::Invalid)?
            .trim();
        if token.is_empty() || token.len() > 256 {
            return Err(AuthError::Invalid);
        }
        if auth.failures.blocked(token, now) {
            return Err(AuthError::RateLimited);
        }
        let fail = |e: AuthError| {
            auth.failures.failed(token, now);
            e
        };
        let hash = token_hash(token);
        let tokens = auth.tokens.clone();
        let lookup = hash.clone();
        let rec = tokio::task::spawn_blocking(move || tokens.token_by_hash(&lookup))
            .await
            .map_err(|_| AuthError::Backend)?
            .map_err(|e| {
                tracing::error!(error = %e, "token lookup failed");
                AuthError::Backend
            })?;
        let Some(rec) = rec else {
            tracing::debug!("request with an unknown token");
            return Err(fail(AuthError::Invalid));
        };
        // The row was found by its hash; compare the stored hash in constant time as well so
        // the decision never depends on how the backend matched.
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            rec.hash.as_bytes(),
            hash.as_bytes(),
        )) {
            return Err(fail(AuthError::Invalid));
        }
        let sites = auth.org.token_sites(rec.unit.as_deref(), &rec.sites);
        Ok(Principal {
            token_id: rec.id,
            role: rec.role,
            sites,
            name: rec.name,
            device: rec.device,
            unit: rec.unit,
            department: rec.department,
            channel: rec.channel,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(role: Role, sites: &[&str]) -> Principal {
        Principal {
            token_id: 1,
            role,
            sites: sites.iter().map(|s| s.to_string()).collect(),
            name: None,
            device: None,
            unit: None,
            department: None,
            channel: None,
        }
    }

    #[test]
    fn a_unit_admin_is_held_to_its_unit_and_a_department_to_its_clues() {
        let admin = Principal {
            unit: Some("lingyin".into()),
            ..p(Role::Admin, &["s1"])
        };
        assert_eq!(admin.scope(), Some(vec!["s1".to_string()]));
        assert!(!admin.sees("s9"));
        let dept = Principal {
            department: Some("market".into()),
            ..p(Role::Inspector, &["s1"])
        };
        let clue = |lead: Option<&str>, assisting: &[&str]| crate::clue::model::Clue {
            department: lead.map(Into::into),
            assisting: assisting.iter().map(|s| s.to_string()).collect(),
            ..crate::clue::model::tests::clue("s1")
        };
        assert!(dept.sees_clue(&clue(Some("market"), &[])));
        assert!(dept.sees_clue(&clue(Some("water"), &["market"])));
        assert!(!dept.sees_clue(&clue(Some("water"), &[])));
        assert!(!dept.sees_clue(&clue(None, &[])));
        assert!(p(Role::Inspector, &["s1"]).sees_clue(&clue(None, &[])));
    }

    #[test]
    fn a_bound_token_speaks_only_for_its_own_device() {
        let bound = Principal {
            device: Some("cam-1".into()),
            ..p(Role::Device, &["a"])
        };
        assert!(bound.require_device("cam-1").is_ok());
        assert!(matches!(
            bound.require_device("cam-2"),
            Err(AuthError::Forbidden(_))
        ));
        assert!(p(Role::Device, &["a"]).require_device("cam-2").is_ok());
    }

    #[test]
    fn only_admin_sees_every_site() {
        assert!(p(Role::Admin, &[]).sees("b"));
        assert!(p(Role::Platform, &["a"]).sees("a"));
        assert!(!p(Role::Platform, &["a"]).sees("b"));
        assert_eq!(
            p(Role::Inspector, &["a"]).scope(),
            Some(vec!["a".to_string()])
        );
        assert_eq!(p(Role::Admin, &["a"]).scope(), None);
    }

    #[test]
    fn inspectors_cannot_close_or_assign() {
        let close = Action::Close { note: None };
        assert!(!Role::Inspector.may_act(&close));
        assert!(Role::Supervisor.may_act(&close));
        assert!(Role::Inspector.may_act(&Action::Claim { note: None }));
        assert!(!Role::Device.may_act(&Action::Comment { text: "x".into() }));
        assert!(!Role::DroneOperator.may_read_clues());
    }

    #[test]
    fn an_auditor_reads_everything_and_acts_on_nothing() {
        let a = Role::Auditor;
        assert!(a.may_read_clues() && a.may_verify_audit() && a.may_read_warnings());
        assert!(!a.may_work_clues() && !a.may_create_clues());
        let every_action = [
            Action::Claim { note: None },
            Action::Comment { text: "x".into() },
            Action::Close { note: None },
            Action::NotifyOwner {
                channel: "sms".into(),
                note: None,
            },
            Action::Decide {
                band: "b".into(),
                penalty: 0,
                leniency_applied: vec![],
                basis: "b".into(),
                check: None,
            },
        ];
        assert!(every_action.iter().all(|x| !a.may_act(x)));
        assert_eq!(
            p(Role::Auditor, &["a"]).scope(),
            Some(vec!["a".to_string()]),
            "an auditor is held to its sites"
        );
    }

    #[test]
    fn failed_logins_block_a_token_prefix_for_the_window() {
        let f = FailedLogins::new(3, 1000);
        let bad = "gwt_0123456789abcdef_wrong";
        let same_prefix = "gwt_0123456789abcdef_other";
        let valid = "gwt_fedcba9876543210_valid";
        for _ in 0..3 {
            assert!(!f.blocked(bad, 0));
            f.failed(bad, 0);
        }
        assert!(f.blocked(bad, 10));
        assert!(f.blocked(same_prefix, 10), "the bucket is the prefix");
        assert!(!f.blocked(valid, 10), "another token is never locked out");
        assert!(!f.blocked(bad, 1000), "the window ends");
    }

    #[test]
    fn role_names_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
