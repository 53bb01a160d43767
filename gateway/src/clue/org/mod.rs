//! The enforcement organisation: units (city -> county -> township) with their sites and
//! departments, and the dispatch of clues to departments.
//!
//! Why it exists: a city does not work as a flat list of sites. A township's team handles its
//! own streets, the county oversees its townships, and within a unit a lead department works a
//! clue with others assisting. Tokens are scoped to a unit (and/or a department), so "a
//! township token sees only its township" follows from the configured tree rather than from
//! site lists copied into every token.
//!
//! - `config`: the `[org]` section and its checks (errors name the key).
//! - `tree`: the checked [`Org`]: units, scopes (own sites plus those below), the unit of a
//!   site.
//! - `dispatch`: lead and assisting departments of a new clue by matter and area.
//! - `address`: supervision notices addressed to a configured unit.
//! - `major`: major clues reported up to the parent unit with a reply deadline (a notice).
//! - `scope`: what a token of a unit and/or department may see.

pub(crate) mod address;
pub(crate) mod config;
pub(crate) mod dispatch;
pub(crate) mod major;
pub(crate) mod scope;
pub(crate) mod tree;

pub(crate) use config::OrgConfig;
pub(crate) use tree::Org;
