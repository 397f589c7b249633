//! The pacer against a model of the API's window, in paused time: every instant is exact, so
//! these check the pacing rules (never over, spread, margins), not the speed of a machine.

use super::*;

/// A fixed window per token, tiled from its first request, counting every request of the
/// token: ours, and those of another user who spends `other_quota` of each window evenly.
struct Server {
    window: Duration,
    allowed: u32,
    other_quota: u32,
    /// Count only every n-th of our requests (a count at odds with ours).
    count_every: u32,
    /// Round the reset down instead of up.
    round_down: bool,
    headers: bool,
    start: Option<Instant>,
    count: u32,
    other_done: u32,
    seen: u32,
    /// Our requests per window, in order.
    ours: Vec<u32>,
    refused: u32,
    others_refused: u32,
}

impl Server {
    fn new(window_secs: u64, allowed: u32) -> Self {
        Self {
            window: Duration::from_secs(window_secs),
            allowed,
            other_quota: 0,
            count_every: 1,
            round_down: false,
            headers: true,
            start: None,
            count: 0,
            other_done: 0,
            seen: 0,
            ours: Vec::new(),
            refused: 0,
            others_refused: 0,
        }
    }

    fn settle_others(&mut self, elapsed: Duration) {
        let due = (u128::from(self.other_quota) * elapsed.min(self.window).as_nanos()
            / self.window.as_nanos()) as u32;
        for _ in self.other_done..due {
            if self.count >= self.allowed {
                self.others_refused += 1;
            }
            self.count += 1;
        }
        self.other_done = due;
    }

    fn roll(&mut self, now: Instant) -> Instant {
        let start = *self.start.get_or_insert_with(|| {
            self.ours.push(0);
            now
        });
        if now.duration_since(start) < self.window {
            self.settle_others(now.duration_since(start));
            return start;
        }
        self.settle_others(self.window);
        let start = start + self.window;
        self.start = Some(start);
        self.count = 0;
        self.other_done = 0;
        self.ours.push(0);
        self.roll(now)
    }

    fn charge(&mut self) -> (u16, RateLimitHeaders) {
        let now = Instant::now();
        let start = self.roll(now);
        self.seen += 1;
        if self.seen.is_multiple_of(self.count_every) {
            self.count += 1;
        }
        let status = if self.count > self.allowed {
            self.refused += 1;
            429
        } else {
            if let Some(n) = self.ours.last_mut() {
                *n += 1;
            }
            200
        };
        let left = self.window - now.duration_since(start);
        let headers = RateLimitHeaders {
            allowed: Some(self.allowed),
            count: Some(self.count),
            reset_secs: Some(if self.round_down {
                left.as_secs()
            } else {
                left.as_nanos().div_ceil(1_000_000_000) as u64
            }),
        };
        (
            status,
            if self.headers {
                headers
            } else {
                RateLimitHeaders::default()
            },
        )
    }

    /// The other user's refusals once the current window has run out with nothing more of
    /// ours.
    fn others_refused_by_the_end(&mut self) -> u32 {
        self.settle_others(self.window);
        self.others_refused
    }
}

/// Sends `n` requests one after another, each when the pacer says; returns when each went.
async fn drive(pacer: &Pacer, server: &mut Server, n: usize) -> Vec<Duration> {
    let start = Instant::now();
    let mut sent = Vec::with_capacity(n);
    for _ in 0..n {
        let ticket = pacer.acquire().await;
        sent.push(start.elapsed());
        let (status, headers) = server.charge();
        ticket.answered(status, headers);
    }
    sent
}

/// Eight callers at once, `each` requests apiece: a request is charged `to_server(caller, i)`
/// after its slot and answered `back(caller, i)` after that. Returns the server.
async fn callers(
    pacer: Pacer,
    server: Server,
    each: u64,
    delays: fn(u64, u64) -> (Duration, Duration),
) -> Server {
    let pacer = std::sync::Arc::new(pacer);
    let server = std::sync::Arc::new(Mutex::new(server));
    // Spawned all at once (a lazy iterator would run them one after another).
    let workers: Vec<_> = (0..8u64)
        .map(|caller| {
            let (pacer, server) = (pacer.clone(), server.clone());
            tokio::spawn(async move {
                for i in 0..each {
                    let ticket = pacer.acquire().await;
                    let (to_server, back) = delays(caller, i);
                    tokio::time::sleep(to_server).await;
                    let (status, headers) = server.lock().unwrap().charge();
                    tokio::time::sleep(back).await;
                    ticket.answered(status, headers);
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let server = std::sync::Arc::into_inner(server).unwrap();
    server.into_inner().unwrap()
}

fn sent_before(sent: &[Duration], secs: f64) -> usize {
    sent.iter().filter(|t| t.as_secs_f64() < secs).count()
}

#[tokio::test(start_paused = true)]
async fn a_window_is_spread_over_its_length_after_a_small_burst() {
    let pacer = Pacer::new(600, 5);
    let mut server = Server::new(60, 600);
    let sent = drive(&pacer, &mut server, 1_200).await;
    assert_eq!(server.refused, 0);
    // The burst goes at once, then the pacing starts.
    assert_eq!(sent_before(&sent, 0.001), 5);
    // Not front-loaded: half the window, about half of it.
    let half = sent_before(&sent, 30.0);
    assert!((290..=320).contains(&half), "{half} in the first 30 s");
    // Yet the window is used before it resets (but for a request whose slot would have
    // come too close to the reset).
    assert!(server.ours[0] >= 599, "{:?}", server.ours);
}

#[tokio::test(start_paused = true)]
async fn another_user_of_the_token_keeps_what_it_spends() {
    let pacer = Pacer::new(600, 5);
    let mut server = Server::new(60, 600);
    server.other_quota = 300;
    drive(&pacer, &mut server, 900).await;
    assert_eq!(server.refused, 0);
    assert_eq!(server.others_refused_by_the_end(), 0);
    // What the other user leaves is what we use: 300 a window, less what the first
    // second's estimate cost.
    assert!(server.ours[0] >= 280, "{:?}", server.ours);
    assert!(server.ours[1] >= 295, "{:?}", server.ours);
}

#[tokio::test(start_paused = true)]
async fn the_configured_share_is_all_we_take() {
    let pacer = Pacer::new(600, 5).with_share(0.5);
    let mut server = Server::new(60, 600);
    drive(&pacer, &mut server, 700).await;
    assert_eq!(server.refused, 0);
    assert!(server.ours.iter().all(|n| *n <= 300), "{:?}", server.ours);
    assert!(server.ours[0] >= 295, "{:?}", server.ours);
}

#[tokio::test(start_paused = true)]
async fn the_ceiling_caps_what_a_generous_window_allows() {
    let pacer = Pacer::new(300, 5);
    let mut server = Server::new(60, 1_000);
    drive(&pacer, &mut server, 400).await;
    assert!(server.ours.iter().all(|n| *n <= 300), "{:?}", server.ours);
    assert_eq!(pacer.paced_rate_per_minute(), 300);
}

#[tokio::test(start_paused = true)]
async fn a_lower_allowed_header_lowers_the_pace() {
    let pacer = Pacer::new(600, 5);
    let mut server = Server::new(60, 180);
    let sent = drive(&pacer, &mut server, 200).await;
    assert_eq!(server.refused, 0);
    assert!(server.ours[0] >= 179, "{:?}", server.ours);
    assert!(sent_before(&sent, 30.0) <= 95, "{sent:?}");
}

#[tokio::test(start_paused = true)]
async fn missing_headers_pace_with_a_margin() {
    let pacer = Pacer::new(600, 1);
    let mut server = Server::new(60, 600);
    server.headers = false;
    let sent = drive(&pacer, &mut server, 101).await;
    // 100 intervals of 60 s ÷ (600 × 0.95).
    let expected = 100.0 * 60.0 / (600.0 * (1.0 - MARGIN));
    let took = sent[100].as_secs_f64();
    assert!(
        (took - expected).abs() < 0.01,
        "{took} s, expected {expected} s"
    );
}

#[tokio::test(start_paused = true)]
async fn a_count_below_our_own_keeps_a_margin() {
    let pacer = Pacer::new(600, 1);
    let mut server = Server::new(60, 600);
    server.count_every = 2;
    let sent = drive(&pacer, &mut server, 300).await;
    // Once the count is found short, never faster than 95 % of the even rate.
    let (a, b) = (sent[100].as_secs_f64(), sent[299].as_secs_f64());
    let fastest = 199.0 * 60.0 / (600.0 * (1.0 - MARGIN));
    assert!(b - a >= fastest - 0.01, "{} s for 199 intervals", b - a);
}

#[tokio::test(start_paused = true)]
async fn a_short_window_with_another_user_is_never_overrun() {
    // The integration test's shape: 3 s windows, whole-second resets.
    let pacer = Pacer::new(60_000, 5);
    let mut server = Server::new(3, 60);
    server.other_quota = 30;
    drive(&pacer, &mut server, 150).await;
    assert_eq!(server.refused, 0);
    assert_eq!(server.others_refused_by_the_end(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_absurd_reset_header_is_capped_not_a_panic() {
    let pacer = Pacer::new(300, 3);
    pacer.acquire().await.answered(
        200,
        RateLimitHeaders {
            allowed: Some(300),
            count: Some(300),
            reset_secs: Some(u64::MAX),
        },
    );
    let start = Instant::now();
    let _ticket = pacer.acquire().await;
    assert_eq!(start.elapsed(), Duration::from_secs(MAX_RESET_SECS));
}

#[tokio::test(start_paused = true)]
async fn an_exhausted_window_holds_until_reset_even_unpaced() {
    for ceiling in [0, 300] {
        let pacer = Pacer::new(ceiling, 10);
        let start = Instant::now();
        pacer.acquire().await.answered(
            200,
            RateLimitHeaders {
                allowed: Some(300),
                count: Some(300),
                reset_secs: Some(12),
            },
        );
        let _ticket = pacer.acquire().await;
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(12),
            "ceiling {ceiling}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_refused_token_forgets_the_window() {
    let pacer = Pacer::new(300, 10);
    let spent = RateLimitHeaders {
        allowed: Some(300),
        count: Some(300),
        reset_secs: Some(50),
    };
    pacer.acquire().await.answered(200, spent);
    pacer.acquire().await.answered(401, spent);
    let start = Instant::now();
    let _ticket = pacer.acquire().await;
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_ends_a_hold() {
    let pacer = Pacer::new(0, 1);
    let shutdown = super::super::shutdown::Shutdown::default();
    let start = Instant::now();
    pacer.hold_until(start + Duration::from_secs(170));
    let (acquired, ()) = tokio::join!(pacer.acquire_unless(&shutdown), async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        shutdown.trigger();
    });
    assert!(acquired.is_none());
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert!(pacer.acquire_unless(&shutdown).await.is_none());
    // The abandoned callers are no longer in flight.
    assert_eq!(pacer.lock().in_flight, 0);
}

#[tokio::test(start_paused = true)]
async fn a_hold_stops_everyone_until_it_ends() {
    let pacer = Pacer::new(0, 1);
    let start = Instant::now();
    pacer.hold_until(start + Duration::from_secs(7));
    let _ticket = pacer.acquire().await;
    assert_eq!(start.elapsed(), Duration::from_secs(7));
}

#[test]
fn a_share_outside_the_range_means_all_of_it() {
    for share in [0.0, -1.0, 1.5, f64::NAN] {
        assert_eq!(
            Pacer::new(300, 1).with_share(share).paced_rate_per_minute(),
            300
        );
    }
    assert_eq!(
        Pacer::new(300, 1).with_share(0.5).paced_rate_per_minute(),
        150
    );
}

#[tokio::test(start_paused = true)]
async fn answers_out_of_order_over_a_slow_network_never_overrun() {
    // Eight callers, each answer 20–300 ms on the way (charged half-way), a second user on
    // the token: answers arrive out of the order the server counted them.
    let mut server = Server::new(60, 600);
    server.other_quota = 300;
    let mut server = callers(Pacer::new(600, 5), server, 100, |caller, i| {
        let half = Duration::from_millis(10 + (caller * 37 + i * 53) % 140);
        (half, half)
    })
    .await;
    assert_eq!(server.refused, 0);
    assert_eq!(server.others_refused_by_the_end(), 0);
    assert!(server.ours[0] >= 270, "{:?}", server.ours);
}

#[tokio::test(start_paused = true)]
async fn a_reset_rounded_down_is_learnt_at_the_first_reset() {
    // The first window outlives what its resets said: at most the one request of ours that
    // found out is refused, and the other user loses at most that second of its pace, once;
    // pacing goes on (no window is mistaken for a new one).
    let pacer = Pacer::new(600, 5);
    let mut server = Server::new(60, 600);
    server.round_down = true;
    server.other_quota = 300;
    let start = Instant::now();
    drive(&pacer, &mut server, 900).await;
    assert!(server.refused <= 1, "{} refused", server.refused);
    assert!(
        server.others_refused_by_the_end() <= 5,
        "{}",
        server.others_refused
    );
    assert!(
        start.elapsed() < Duration::from_secs(200),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(pacer.lock().reset_slack, Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn an_end_placed_a_moment_early_is_not_a_new_window() {
    // An answer a moment before the reset says 1 s when a little more is left; the next
    // request, past that end, is counted in the same window. It is not taken for a new
    // window whose "others" would be all of our own requests.
    let pacer = Pacer::new(600, 5);
    let headers = |count, reset| RateLimitHeaders {
        allowed: Some(600),
        count: Some(count),
        reset_secs: Some(reset),
    };
    let start = Instant::now();
    pacer.acquire().await.answered(200, headers(1, 60));
    for count in 2..=500 {
        pacer.acquire().await.answered(200, headers(count, 30));
    }
    tokio::time::advance((start + Duration::from_millis(58_999_600)) - Instant::now()).await;
    pacer.acquire().await.answered(200, headers(501, 1));
    tokio::time::advance(Duration::from_millis(1_000_100)).await;
    pacer.acquire().await.answered(200, headers(502, 1));
    tokio::time::advance(Duration::from_secs(1)).await;
    pacer.acquire().await.answered(200, headers(1, 60));
    let before = Instant::now();
    for count in 2..=20 {
        pacer.acquire().await.answered(200, headers(count, 59));
    }
    assert!(
        before.elapsed() < Duration::from_secs(3),
        "{:?} for 19 requests in a fresh window",
        before.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn eight_callers_with_slow_answers_leave_the_other_user_its_share() {
    // The integration test's shape on a starved machine: 3 s windows of 60, 30 of them
    // another user's, eight callers at once (most of them waiting for their slot at any
    // time), every answer 300 ms on its way back. Callers waiting for their slot are in no
    // count, and a count is as old as its request: the other user keeps its 30 a window.
    let mut server = Server::new(3, 60);
    server.other_quota = 30;
    let mut server = callers(Pacer::new(1_200, 5), server, 40, |_, _| {
        (Duration::ZERO, Duration::from_millis(300))
    })
    .await;
    assert_eq!(server.refused, 0);
    assert_eq!(server.others_refused_by_the_end(), 0, "{:?}", server.ours);
    assert!(server.ours.iter().all(|n| *n <= 30), "{:?}", server.ours);
    // Still paced, not starved: the windows carry a fair part of what is ours.
    let full: Vec<u32> = server.ours[1..server.ours.len() - 1].to_vec();
    assert!(
        full.iter().sum::<u32>() >= 10 * full.len() as u32,
        "{:?}",
        server.ours
    );
}
