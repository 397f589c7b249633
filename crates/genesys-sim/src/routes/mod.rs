//! One module per API area: the handlers behind the routes `http::server` lists.

pub(crate) mod analytics;
pub(crate) mod control;
pub(crate) mod limits;
pub(crate) mod oauth;
pub(crate) mod routing;
pub(crate) mod skillgroups;
pub(crate) mod tasks;
pub(crate) mod users;
