//! Client-side pacing: keeps our requests within what the API's rate-limit window allows, so
//! that a cycle neither discovers the limit by hitting it nor takes longer than the limit
//! requires.
//!
//! Every answer says where the token stands: `inin-ratelimit-allowed` requests in the
//! window, `inin-ratelimit-count` made in it so far (by anyone using the token) and
//! `inin-ratelimit-reset` seconds until it resets. The pacer spreads what the window still
//! allows over the time left in it, after setting aside what the token's other users will
//! spend at the pace they are going, and never takes more than `rate_share` of a window for
//! itself. Requests go one every `1 ÷ rate` after a burst of a few (a bucket of tokens
//! refilled at the current rate), never a window's worth at once: that would finish a cycle
//! as fast and starve everyone else on the token. After a lull (the cycle waiting on a slow
//! answer) the pacer may go up to half as fast again as the window's even rate, to use what
//! the window still allows.
//!
//! The others' pace is read so as not to come out slower than the answers show, since a
//! pace read too slow spends what is theirs. Their requests are the count less our answered
//! requests, less only those of ours already on the way (which may or may not be in it):
//! callers still waiting for their slot are in no count yet. And a count is dated from when
//! its request left, not from when its answer came: a slow answer (a loaded machine, a slow
//! network) tells of the window as it was, and the others have gone on since. No margin is
//! added for this; when answers come at once, both readings are the same.
//!
//! A margin (requests at 95 % of the even rate) is kept only where the headers cannot be
//! relied on: before the first answer, after an answer without them, and in a window whose
//! count falls short of our own requests in it. A 429 or a spent window holds every caller
//! until the window resets.
//!
//! What is not documented (`docs/genesys-api.md` §3) is taken conservatively: the reset is
//! read as whole seconds, rounded up, so each answer places the window's end between
//! `sent + reset − 1 s` and `received + reset`; the pacer narrows that down answer by
//! answer and spreads over the later bound (the one public sample, a reset of 61 s with a
//! count of 1, overstates rather than understates). Should a window outlive that bound (a
//! server rounding down), a second is added to every reset from then on; until then, that
//! window's last second may be short for the token's other users. The window's length is
//! the longest reset seen (a minute until one is).

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// The longest hold an `inin-ratelimit-reset` header can impose (the documented window is
/// 60 s; an hour leaves room for a slow server without trusting arbitrary numbers).
pub const MAX_RESET_SECS: u64 = 3600;

/// The window's length until an answer tells it: Genesys documents its limits per minute.
const DEFAULT_WINDOW: Duration = Duration::from_secs(60);

/// The longest window a rate is spread over: a longer reset is still honoured as a hold.
const MAX_WINDOW: Duration = Duration::from_secs(120);

/// Share of the even rate given up where the headers cannot be relied on.
const MARGIN: f64 = 0.05;

/// After a lull (the cycle waiting on a slow answer), how far above the window's even rate
/// the pacer may go to use what the window still allows.
const CATCH_UP: f64 = 1.5;

/// The least span the other users' pace in a window is read over. Until that much of the
/// window has passed, the last window's pace stands, unless what they spent so far, read
/// over this span, is faster.
const MIN_SPAN: Duration = Duration::from_secs(1);

/// How often per window a caller who must leave what is left to others looks again.
const RECHECKS: u32 = 60;

/// What the next request should do.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Plan {
    /// Go at `rate` requests a second (a burst of `burst` at most), not before
    /// `not_before`, and no later than `by` (the window's reset: a slot beyond it belongs
    /// to the next window, which starts afresh).
    Pace {
        rate: f64,
        not_before: Option<Instant>,
        by: Option<Instant>,
    },
    /// Nothing for us now: look again then.
    Recheck(Instant),
}

impl Plan {
    fn pace(rate: f64) -> Self {
        Plan::Pace {
            rate,
            not_before: None,
            by: None,
        }
    }
}

/// The `inin-ratelimit-*` headers of one response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimitHeaders {
    pub allowed: Option<u32>,
    pub count: Option<u32>,
    pub reset_secs: Option<u64>,
}

impl RateLimitHeaders {
    pub fn from_headers(headers: &reqwest::header::HeaderMap) -> Self {
        let num = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<u64>().ok();
        Self {
            allowed: num("inin-ratelimit-allowed").and_then(|v| u32::try_from(v).ok()),
            count: num("inin-ratelimit-count").and_then(|v| u32::try_from(v).ok()),
            reset_secs: num("inin-ratelimit-reset"),
        }
    }
}

/// The pacing limiter shared by every request of one client (one token).
#[derive(Debug)]
pub struct Pacer {
    state: Mutex<State>,
}

/// One request's place in the pacing: taken before it is sent, handed back with the
/// answer's headers ([`Ticket::answered`]). Dropped unanswered (a transport error, a
/// cancelled call), it only stops counting as in flight.
#[derive(Debug)]
#[must_use = "a ticket counts as in flight until it is answered or dropped"]
pub struct Ticket<'a> {
    pacer: &'a Pacer,
    sent: Instant,
    /// Still waiting for its slot: not sent, so in no count yet.
    waiting: bool,
    answered: bool,
}

impl Ticket<'_> {
    /// Hands back what the answer said about the window.
    pub fn answered(mut self, status: u16, headers: RateLimitHeaders) {
        self.answered = true;
        self.pacer.finish(
            self.waiting,
            Some((self.sent, Instant::now(), status, headers)),
        );
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.pacer.finish(self.waiting, None);
        }
    }
}

#[derive(Debug)]
struct State {
    /// The most we will ever use per minute (configuration, the org's limits); 0 = unpaced.
    ceiling_per_minute: u32,
    /// The share of the allowed rate that is ours (0 < share ≤ 1).
    share: f64,
    burst: u32,
    /// Requests that may go now (at most `burst`; below 0 once slots are promised ahead),
    /// as of `tokens_at`. A bucket refilled at the current rate rather than a theoretical
    /// arrival time (GCRA): the rate changes with every answer, and a debt counted in
    /// requests survives that where one counted in time would stretch or shrink.
    tokens: f64,
    tokens_at: Instant,
    /// Nobody sends before this (a 429's `Retry-After`).
    hold_until: Option<Instant>,
    /// Tickets handed out and not yet answered or dropped.
    in_flight: u32,
    /// Those of them still waiting for their slot: sent by nobody yet, so in no count.
    waiting: u32,
    /// The latest `inin-ratelimit-allowed`.
    allowed: Option<u32>,
    /// The longest reset seen (the window's length), at most [`MAX_WINDOW`].
    window_len: Option<Duration>,
    /// Whether the latest answer carried all three headers.
    headers: bool,
    /// The window the latest answers were counted in.
    window: Option<Window>,
    /// The other users' pace in the last window that measured it, requests per second.
    others_rate: f64,
    /// Added to every reset once a window has outlived one (a server rounding down).
    reset_slack: Duration,
}

/// What the answers tell about one window of the server's.
#[derive(Debug, Clone)]
struct Window {
    /// The window ends after `end_lo` and no later than `end_hi`.
    end_lo: Instant,
    end_hi: Instant,
    /// The highest count seen, and when the request it answers left: the count may have
    /// been taken any time from then until the answer came, and is read as of the earlier
    /// (a slow answer's count is old news: the others have gone on since). Every answer
    /// counted in the window has a count no higher.
    count: u32,
    count_at: Instant,
    /// Our answers counted in this window.
    ours: u32,
    /// Requests of others in the count: the count less our answers, less what we have on
    /// the way (which may or may not be in it). Requests still waiting for their slot are
    /// in no count, and are not taken off.
    others: u32,
    /// The count fell short of our own requests in this window.
    disagrees: bool,
}

/// Whole seconds as a [`Duration`], capped at [`MAX_RESET_SECS`].
fn reset_duration(secs: u64) -> Duration {
    Duration::from_secs(secs.min(MAX_RESET_SECS))
}

impl State {
    fn window_len(&self) -> Duration {
        self.window_len.unwrap_or(DEFAULT_WINDOW)
    }

    /// Requests per window we may count on: the latest `allowed`, never above the ceiling.
    fn allowed_per_window(&self) -> f64 {
        let len = self.window_len().as_secs_f64();
        let ceiling = f64::from(self.ceiling_per_minute) * len / 60.0;
        self.allowed.map_or(ceiling, |a| f64::from(a).min(ceiling))
    }

    /// Our even rate over a window, requests per second.
    fn even_rate(&self) -> f64 {
        self.share * self.allowed_per_window() / self.window_len().as_secs_f64()
    }

    /// The other users' pace in `w` as of `now`, requests per second: what they had spent
    /// by the latest count over the part of the window gone by then. Early in a window, the
    /// last window's pace (or a faster one already seen). The clock, not the answers, ends
    /// the early part: a caller holding back for the others still gets a fresh look.
    fn others_rate_in(&self, w: &Window, now: Instant) -> f64 {
        let len = self.window_len();
        let into = |t: Instant| len.saturating_sub(w.end_hi.saturating_duration_since(t));
        let span = MIN_SPAN.min(len / 4);
        let counted = into(w.count_at);
        if into(now) < span {
            // A count taken in the window's first moments is no measure of a pace: read
            // over the least span, as later.
            let seen = f64::from(w.others) / counted.max(span).as_secs_f64();
            return self.others_rate.max(seen);
        }
        f64::from(w.others) / counted.max(span).as_secs_f64()
    }

    /// How to pace the next request.
    fn plan(&self, now: Instant) -> Plan {
        let even = self.even_rate();
        let allowed = self.allowed_per_window();
        let len = self.window_len().as_secs_f64();
        let Some(w) = self.window.as_ref().filter(|w| now < w.end_hi) else {
            if !self.headers {
                return Plan::pace(even * (1.0 - MARGIN));
            }
            // A new window is about to open: what the others left us of a whole one (at
            // least a request, whose answer tells more).
            let left = (self.share * allowed).min(allowed - self.others_rate * len);
            return Plan::pace(left.max(1.0) / len);
        };
        let tau = w.end_hi.duration_since(now).as_secs_f64().clamp(1e-3, len);
        let rho = self.others_rate_in(w, now);
        // Our requests in flight may be in the count already: counted again, to be safe.
        let others_since = rho * now.saturating_duration_since(w.count_at).as_secs_f64();
        let used = f64::from(w.count) + f64::from(self.in_flight) + others_since;
        if allowed - used < 1.0 {
            // Spent: everyone waits for the reset.
            return Plan::Pace {
                rate: even,
                not_before: Some(w.end_hi),
                by: None,
            };
        }
        // The others' requests come whole: one more, lest the last of theirs find no room.
        let reserve = if rho > 0.0 { rho * tau + 1.0 } else { 0.0 };
        let left_total = allowed - used - reserve;
        let left_ours = self.share * allowed - f64::from(w.ours) - f64::from(self.in_flight);
        let left = left_total.min(left_ours);
        if left < 1.0 {
            // What is left is the others' (or not ours): look again shortly, as their pace
            // may turn out slower than it looked.
            return Plan::Recheck(w.end_hi.min(now + self.window_len() / RECHECKS));
        }
        let cap = if w.disagrees {
            even * (1.0 - MARGIN)
        } else {
            even * CATCH_UP
        };
        Plan::Pace {
            rate: (left / tau).min(cap),
            not_before: None,
            by: Some(w.end_hi),
        }
    }

    /// Reads one answer's headers into the window they describe.
    fn observe(&mut self, sent: Instant, received: Instant, h: RateLimitHeaders) {
        let (Some(allowed), Some(count), Some(reset)) = (h.allowed, h.count, h.reset_secs) else {
            self.headers = false;
            if let Some(allowed) = h.allowed.filter(|a| *a > 0) {
                self.allowed = Some(allowed);
            }
            return;
        };
        if allowed == 0 {
            self.headers = false;
            return;
        }
        self.headers = true;
        self.allowed = Some(allowed);
        let reset = reset_duration(reset);
        let len = reset.clamp(Duration::from_secs(1), MAX_WINDOW);
        self.window_len = Some(self.window_len.map_or(len, |l| l.max(len)));
        let second = Duration::from_secs(1);
        let lo = (sent + reset).checked_sub(second).unwrap_or(sent);
        let mut hi = received + reset + self.reset_slack;
        let (same, late) = match &self.window {
            // A late answer from a window that has already given way to the next.
            Some(w) if hi <= w.end_lo => return,
            // Its end overlaps ours; or it is just past it and the count did not start
            // again: the window outlived the end we had placed.
            Some(w) => {
                let same = lo < w.end_hi || (count >= w.count && lo < w.end_hi + second);
                (same, same && sent >= w.end_hi)
            }
            None => (false, false),
        };
        if late && self.reset_slack.is_zero() {
            // Counted in a window after the latest end its resets allowed: the server
            // rounds them down (or its clock lags). A second more from now on.
            self.reset_slack = second;
            hi += second;
            tracing::info!("inin-ratelimit-reset understates the time left in the window; pacing to a second later");
        }
        if !same {
            if let Some(old) = &self.window {
                let cap = self.allowed_per_window() / self.window_len().as_secs_f64();
                self.others_rate = self.others_rate_in(old, received).min(cap);
            }
            self.window = Some(Window {
                end_lo: lo,
                end_hi: hi,
                count,
                count_at: sent,
                ours: 0,
                others: 0,
                disagrees: false,
            });
        }
        let on_the_way = self.in_flight.saturating_sub(self.waiting);
        let Some(w) = self.window.as_mut() else {
            return;
        };
        // Counted in this window: it had not ended when the request left.
        w.end_lo = w.end_lo.max(lo).max(sent);
        w.end_hi = if late { hi } else { w.end_hi.min(hi) }.max(w.end_lo);
        w.ours = w.ours.saturating_add(1);
        if count > w.count {
            w.count = count;
            w.count_at = sent;
        }
        w.others = w.count.saturating_sub(w.ours).saturating_sub(on_the_way);
        // The count may or may not include the request it answers: one short is no
        // disagreement.
        if !w.disagrees && w.count.saturating_add(1) < w.ours {
            w.disagrees = true;
            tracing::warn!(
                count,
                ours = w.ours,
                window_count = w.count,
                "inin-ratelimit-count is below our own requests in the window; pacing with a margin"
            );
        }
    }
}

impl Pacer {
    /// `limit_per_minute == 0` disables pacing (tests, a simulator without limits); a spent
    /// window and a 429 still hold every caller.
    pub fn new(limit_per_minute: u32, burst: u32) -> Self {
        Self {
            state: Mutex::new(State {
                ceiling_per_minute: limit_per_minute,
                share: 1.0,
                burst: burst.max(1),
                tokens: f64::from(burst.max(1)),
                tokens_at: Instant::now(),
                hold_until: None,
                in_flight: 0,
                waiting: 0,
                allowed: None,
                window_len: None,
                headers: false,
                window: None,
                others_rate: 0.0,
                reset_slack: Duration::ZERO,
            }),
        }
    }

    /// Takes at most `share` (0 < share ≤ 1) of the allowed rate, leaving the rest to other
    /// work on the same OAuth client. Anything else means all of it.
    pub fn with_share(self, share: f64) -> Self {
        self.lock().share = if share > 0.0 && share <= 1.0 {
            share
        } else {
            1.0
        };
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned pacer only means a panic elsewhere; its numbers are still sound.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The most we send per minute (configuration, lowered by the org's limit); 0 = unpaced.
    pub fn ceiling_per_minute(&self) -> u32 {
        self.lock().ceiling_per_minute
    }

    /// Our part of the ceiling, per minute: what we pace to when the headers allow it all.
    pub fn paced_rate_per_minute(&self) -> u32 {
        let s = self.lock();
        (f64::from(s.ceiling_per_minute) * s.share).floor() as u32
    }

    /// Sets the most we may use (from configuration or the org's limits).
    pub fn set_ceiling(&self, per_minute: u32) {
        self.lock().ceiling_per_minute = per_minute;
    }

    /// Numbers the next request and finds its slot, or says when to look again.
    fn reserve(&self) -> Result<Instant, Instant> {
        let mut s = self.lock();
        let now = Instant::now();
        let hold = s.hold_until.filter(|h| *h > now);
        let slot = if s.ceiling_per_minute == 0 {
            let spent = s
                .window
                .as_ref()
                .filter(|w| now < w.end_hi && s.allowed.is_some_and(|a| w.count >= a))
                .map(|w| w.end_hi);
            now.max(hold.unwrap_or(now)).max(spent.unwrap_or(now))
        } else {
            let (rate, not_before, by) = match s.plan(now) {
                Plan::Pace {
                    rate,
                    not_before,
                    by,
                } => (rate, not_before, by),
                Plan::Recheck(at) => return Err(at.max(hold.unwrap_or(at))),
            };
            let rate = if rate.is_finite() && rate > 0.0 {
                rate.max(1.0 / MAX_RESET_SECS as f64)
            } else {
                1.0
            };
            let from = now
                .max(not_before.unwrap_or(now))
                .max(hold.unwrap_or(now))
                .max(s.tokens_at);
            let refill = from.duration_since(s.tokens_at).as_secs_f64() * rate;
            s.tokens = (s.tokens + refill).min(f64::from(s.burst));
            s.tokens_at = from;
            let wait = Duration::from_secs_f64((1.0 - s.tokens).max(0.0) / rate);
            s.tokens -= 1.0;
            let slot = from + wait;
            by.map_or(slot, |by| slot.min(by.max(from)))
        };
        s.in_flight += 1;
        s.waiting += 1;
        Ok(slot)
    }

    fn finish(&self, waiting: bool, answer: Option<(Instant, Instant, u16, RateLimitHeaders)>) {
        let mut s = self.lock();
        s.in_flight = s.in_flight.saturating_sub(1);
        if waiting {
            s.waiting = s.waiting.saturating_sub(1);
        }
        match answer {
            // A refused token: the next one has a window of its own.
            Some((_, _, 401, _)) => s.window = None,
            Some((sent, received, _, headers)) => s.observe(sent, received, headers),
            None => {}
        }
    }

    /// Waits for this caller's slot.
    pub async fn acquire(&self) -> Ticket<'_> {
        let slot = loop {
            match self.reserve() {
                Ok(reserved) => break reserved,
                Err(again) => tokio::time::sleep_until(again).await,
            }
        };
        // Created before the wait: a caller that gives up waiting hands its slot back.
        let mut ticket = Ticket {
            pacer: self,
            sent: slot,
            waiting: true,
            answered: false,
        };
        tokio::time::sleep_until(slot).await;
        let mut s = self.lock();
        s.waiting = s.waiting.saturating_sub(1);
        ticket.waiting = false;
        ticket.sent = Instant::now();
        drop(s);
        ticket
    }

    /// As [`Pacer::acquire`], but gives up (`None`) as soon as `shutdown` is triggered: a
    /// stopping process must not sit out a hold of minutes.
    pub async fn acquire_unless(&self, shutdown: &super::shutdown::Shutdown) -> Option<Ticket<'_>> {
        tokio::select! {
            ticket = self.acquire() => Some(ticket),
            () = shutdown.triggered() => None,
        }
    }

    /// Holds every caller until `until` (a 429's `Retry-After`).
    pub fn hold_until(&self, until: Instant) {
        let mut s = self.lock();
        s.hold_until = Some(s.hold_until.map_or(until, |h| h.max(until)));
    }
}

#[cfg(test)]
mod tests;
