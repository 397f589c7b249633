//! The harm test the daemon checks every day: a mixture sequential probability ratio test
//! (Robbins' normal mixture; Johari et al., "Always valid inference"). Looking at a fixed
//! 95 % interval every day would, over weeks, cross by chance far more often than 5 % of the
//! time; this boundary widens with the information gathered so that the chance of *ever*
//! crossing under no harm stays below `alpha`.
//!
//! The estimate τ̂ with variance V is treated as a Gaussian observation with information
//! I = 1/V. Harm beyond the bound b means sign·τ > b. Mixing the alternative over
//! N(b, σ²) gives the likelihood ratio
//! Λ = (1 + Iσ²)^(−1/2) · exp(I²σ²x² / (2(1 + Iσ²))), x = sign·τ̂ − b,
//! a nonnegative martingale under sign·τ = b, so P(Λ ever ≥ 1/α) ≤ α (Ville). Harm is
//! declared when x > 0 and Λ ≥ 1/α.

/// The threshold `x` must exceed (in the metric's unit) for harm to be shown, given the
/// estimate's variance, the mixture's scale `prior_sd` (an effect size worth catching: the
/// bound itself) and `alpha`. Infinite without information.
pub fn boundary(variance: f64, prior_sd: f64, alpha: f64) -> f64 {
    let usable = variance.is_finite() && variance > 0.0 && prior_sd > 0.0 && alpha > 0.0;
    if !usable {
        return f64::INFINITY;
    }
    let info = 1.0 / variance;
    let s2 = prior_sd * prior_sd;
    let k = 1.0 + info * s2;
    (k / (info * info * s2) * (2.0 * (1.0 / alpha).ln() + k.ln())).sqrt()
}

/// log Λ of an excess `x` (sign·τ̂ − bound): for the record, next to the boundary.
pub fn log_likelihood_ratio(x: f64, variance: f64, prior_sd: f64) -> f64 {
    let usable = variance.is_finite() && variance > 0.0 && prior_sd > 0.0;
    if !usable {
        return 0.0;
    }
    let info = 1.0 / variance;
    let s2 = prior_sd * prior_sd;
    let k = 1.0 + info * s2;
    -0.5 * k.ln() + info * info * s2 * x * x / (2.0 * k)
}

/// Whether harm beyond the bound shows: `x` (sign·τ̂ − bound) above the boundary.
pub fn shows_harm(x: f64, variance: f64, prior_sd: f64, alpha: f64) -> bool {
    x > 0.0 && x > boundary(variance, prior_sd, alpha)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boundary_is_where_the_likelihood_ratio_reaches_one_over_alpha() {
        let (v, s, a) = (0.25, 1.0, 0.05);
        let c = boundary(v, s, a);
        let llr = log_likelihood_ratio(c, v, s);
        assert!((llr - (1.0f64 / a).ln()).abs() < 1e-9, "{llr}");
    }

    #[test]
    fn harm_shows_only_past_the_boundary_and_more_information_narrows_it() {
        // Variance 1, scale 1, alpha 0.05: the boundary is sqrt(2 (2 ln 20 + ln 2)) = 3.656.
        let c = boundary(1.0, 1.0, 0.05);
        assert!((c - 3.6564).abs() < 1e-3, "{c}");
        assert!(!shows_harm(c - 0.01, 1.0, 1.0, 0.05));
        assert!(shows_harm(c + 0.01, 1.0, 1.0, 0.05));
        assert!(!shows_harm(-5.0, 1.0, 1.0, 0.05));
        assert!(boundary(0.01, 1.0, 0.05) < c);
        // Stricter alpha, wider boundary; no information, never.
        assert!(boundary(1.0, 1.0, 0.01) > c);
        assert!(!shows_harm(1e9, f64::INFINITY, 1.0, 0.05));
    }

    #[test]
    fn it_is_wider_than_a_fixed_interval_looked_at_once() {
        // At the same information the always-valid boundary exceeds the one-sided z of 1.645.
        for v in [0.01, 0.1, 1.0] {
            assert!(boundary(v, 1.0, 0.05) > 1.645 * v.sqrt());
        }
    }
}
