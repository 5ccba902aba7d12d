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
