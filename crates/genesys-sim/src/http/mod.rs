//! The HTTP edge: the route table and router, the middleware every request passes (request
//! ids, auth, rate limit, injected faults, recording), `ErrorBody` errors, paging, query
//! strings and the JSON renderings endpoints share.

pub(crate) mod errors;
pub(crate) mod gate;
pub(crate) mod paging;
pub(crate) mod query;
pub(crate) mod render;
pub(crate) mod server;
