//! Statistics over samples. Pure.

pub fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.iter().sum::<f64>() / v.len() as f64
}

/// Sample standard deviation (n - 1).
pub fn stddev(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let m = mean(v);
    (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
}

/// Coefficient of variation in percent.
pub fn cv_percent(v: &[f64]) -> f64 {
    let m = mean(v);
    if m == 0.0 || v.len() < 2 {
        return 0.0;
    }
    100.0 * stddev(v) / m.abs()
}

pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Average ranks (1-based) of `all`, ties sharing their mean rank, and the tie
/// correction term sum(t^3 - t).
fn ranks(all: &[f64]) -> (Vec<f64>, f64) {
    let mut idx: Vec<usize> = (0..all.len()).collect();
    idx.sort_by(|&a, &b| all[a].total_cmp(&all[b]));
    let mut r = vec![0.0; all.len()];
    let mut ties = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && all[idx[j + 1]] == all[idx[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            r[k] = rank;
        }
        let t = (j - i + 1) as f64;
        ties += t * t * t - t;
        i = j + 1;
    }
    (r, ties)
}

/// Complementary error function (Numerical Recipes' Chebyshev fit, relative error
/// below 1.2e-7: ample for p-values).
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.26551223
        + t * (1.00002368
            + t * (0.37409196
                + t * (0.09678418
                    + t * (-0.18628806
                        + t * (0.27886807
                            + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// Number of ways to reach each U with n1 and n2 items (the exact null distribution).
pub fn u_counts(n1: usize, n2: usize) -> Vec<f64> {
    // f[i][j][u]: arrangements of i x's and j y's with statistic u, built row by row.
    let max = n1 * n2;
    let mut prev: Vec<Vec<f64>> = vec![vec![0.0; max + 1]; n2 + 1];
    for row in prev.iter_mut() {
        row[0] = 1.0; // zero x's: U = 0
    }
    for i in 1..=n1 {
        let mut cur: Vec<Vec<f64>> = vec![vec![0.0; max + 1]; n2 + 1];
        cur[0][0] = 1.0;
        for j in 1..=n2 {
            for u in 0..=i * j {
                // Largest item is an x (beats all j y's) or a y.
                let a = if u >= j { prev[j][u - j] } else { 0.0 };
                let b = cur[j - 1][u];
                cur[j][u] = a + b;
            }
        }
        prev = cur;
    }
    prev[n2].clone()
}

/// Two-sided Mann-Whitney U test of x against y, as SciPy's
/// `mannwhitneyu(x, y, alternative="two-sided")` (method "auto"): exact when a
/// sample has at most 8 values and there are no ties, else the normal approximation
/// with tie and continuity correction. Returns (U of x, p).
pub fn mann_whitney(x: &[f64], y: &[f64]) -> (f64, f64) {
    let (n1, n2) = (x.len(), y.len());
    if n1 == 0 || n2 == 0 {
        return (f64::NAN, f64::NAN);
    }
    let all: Vec<f64> = x.iter().chain(y).copied().collect();
    let (r, ties) = ranks(&all);
    let r1: f64 = r[..n1].iter().sum();
    let u1 = r1 - (n1 * (n1 + 1)) as f64 / 2.0;
    let u2 = (n1 * n2) as f64 - u1;
    let u = u1.max(u2);
    let p = if (n1 <= 8 || n2 <= 8) && ties == 0.0 {
        let counts = u_counts(n1, n2);
        let total: f64 = counts.iter().sum();
        // P(U >= u), doubled.
        let sf: f64 = counts[u as usize..].iter().sum::<f64>() / total;
        (2.0 * sf).min(1.0)
    } else {
        let n = (n1 + n2) as f64;
        let mu = (n1 * n2) as f64 / 2.0;
        let var = (n1 * n2) as f64 / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)));
        if var <= 0.0 {
            1.0
        } else {
            let z = (u - mu - 0.5) / var.sqrt();
            erfc(z / std::f64::consts::SQRT_2).min(1.0)
        }
    };
    (u1, p)
}

/// splitmix64: a tiny, well-known generator, so the bootstrap can be reproduced
/// exactly elsewhere (tests/data/stats/make-fixtures.py does).
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }
    /// Uniform in 0..n (modulo bias is negligible for sample counts).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// numpy's default (linear) percentile of sorted data, q in 0..=100.
pub fn percentile_sorted(s: &[f64], q: f64) -> f64 {
    if s.is_empty() {
        return f64::NAN;
    }
    let pos = q / 100.0 * (s.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    s[lo] + (s[hi] - s[lo]) * (pos - lo as f64)
}

/// Percent change of the median from `base` to `new`, with a 95% percentile-bootstrap
/// interval (`rounds` resamples of both sides, fixed seed). Returns (change, lo, hi).
pub fn change_with_ci(base: &[f64], new: &[f64], rounds: usize, seed: u64) -> (f64, f64, f64) {
    let change = |b: f64, n: f64| (n / b - 1.0) * 100.0;
    let point = change(median(base), median(new));
    if base.len() < 2 || new.len() < 2 {
        return (point, f64::NAN, f64::NAN);
    }
    let mut rng = SplitMix64(seed);
    let mut est = Vec::with_capacity(rounds);
    let (mut rb, mut rn) = (vec![0.0; base.len()], vec![0.0; new.len()]);
    for _ in 0..rounds {
        for v in rb.iter_mut() {
            *v = base[rng.below(base.len())];
        }
        for v in rn.iter_mut() {
            *v = new[rng.below(new.len())];
        }
        est.push(change(median(&rb), median(&rn)));
    }
    est.sort_by(|a, b| a.total_cmp(b));
    (point, percentile_sorted(&est, 2.5), percentile_sorted(&est, 97.5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn against_python_statistics() {
        // python3: statistics.mean/stdev/median of [10, 12, 11, 15, 9]
        let v = [10.0, 12.0, 11.0, 15.0, 9.0];
        assert_eq!(mean(&v), 11.4);
        assert!((stddev(&v) - 2.302172886644267).abs() < 1e-12);
        assert_eq!(median(&v), 11.0);
        assert_eq!(median(&[1.0, 4.0, 2.0, 3.0]), 2.5);
        assert!((cv_percent(&v) - 20.194499005651467).abs() < 1e-9);
    }
}
