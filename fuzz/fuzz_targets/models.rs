//! Every API response body the client decodes, on any bytes: serde must return Ok or Err,
//! never panic, and what the client then does with a decoded listing must not panic either.
//! The first byte picks the model so one corpus covers them all.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skill_tuner::genesys::error::{AuthErrorBody, ErrorBody};
use skill_tuner::genesys::models::{
    AggregateResponse, Limit, Listing, RoutingSkill, User, UserRoutingSkill, Workitem,
    WorkitemQueryResponse, WorkitemStatus,
};

fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Option<T> {
    serde_json::from_slice(body).ok()
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 11 {
        0 => {
            if let Some(l) = decode::<Listing<User>>(body) {
                let _ = l.has_more(1);
            }
        }
        1 => {
            if let Some(l) = decode::<Listing<UserRoutingSkill>>(body) {
                let _ = l.has_more(u32::MAX);
            }
        }
        2 => {
            let _ = decode::<Listing<RoutingSkill>>(body);
        }
        3 => {
            let _ = decode::<AggregateResponse>(body);
        }
        4 => {
            let _ = decode::<WorkitemQueryResponse>(body);
        }
        5 => {
            let _ = decode::<ErrorBody>(body);
        }
        6 => {
            let _ = decode::<AuthErrorBody>(body);
        }
        7 => {
            let _ = decode::<Workitem>(body);
        }
        8 => {
            let _ = decode::<Listing<WorkitemStatus>>(body);
        }
        9 => {
            let _ = decode::<Listing<Limit>>(body);
        }
        _ => {
            let _ = decode::<serde_json::Value>(body);
        }
    }
});
