//! Numerically stable, mergeable least squares and the significance test built on it.
//!
//! [`Moments`] keeps count, means and co-moments updated with Welford's recurrence and merged with
//! Chan et al.'s formula, so partial statistics (per bucket, per segment) combine into exactly
//! the fit a batch computation would give, without cancellation from large timestamps or byte
//! counts.
//!
//! A plain t-test on the slope assumes independent residuals. Memory floors are not independent:
//! a daily wave, a step, or a slowly drifting cache leaves long runs of same-signed residuals,
//! and treating 32 such points as 32 independent samples is how slope tests produce false alarms.
//! [`LineFit`] therefore estimates the lag-1 autocorrelation ρ of the residuals and uses the
//! effective sample size `n_eff = n (1 - ρ) / (1 + ρ)`: the slope's variance is inflated by
//! `n / n_eff` and the t statistic is compared with a Student-t quantile at `n_eff - 2` degrees
//! of freedom. Negative ρ is clamped to 0 (it would only make the test more permissive).

/// Count, means and co-moments of (x, y) pairs.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Moments {
    /// Number of pairs.
    pub n: f64,
    /// Mean of x.
    pub mean_x: f64,
    /// Mean of y.
    pub mean_y: f64,
    /// Σ (x - mean_x)².
    pub sxx: f64,
    /// Σ (y - mean_y)².
    pub syy: f64,
    /// Σ (x - mean_x)(y - mean_y).
    pub sxy: f64,
}

impl Moments {
    /// Adds one pair (Welford).
    pub fn push(&mut self, x: f64, y: f64) {
        self.n += 1.0;
        let dx = x - self.mean_x;
        let dy = y - self.mean_y;
        self.mean_x += dx / self.n;
        self.mean_y += dy / self.n;
        self.sxx += dx * (x - self.mean_x);
        self.syy += dy * (y - self.mean_y);
        self.sxy += dx * (y - self.mean_y);
    }

    /// Combines two sets of statistics (Chan et al.); equal to pushing both sets' pairs.
    pub fn merge(&self, other: &Moments) -> Moments {
        if self.n == 0.0 {
            return *other;
        }
        if other.n == 0.0 {
            return *self;
        }
        let n = self.n + other.n;
        let dx = other.mean_x - self.mean_x;
        let dy = other.mean_y - self.mean_y;
        let w = self.n * other.n / n;
        Moments {
            n,
            mean_x: self.mean_x + dx * other.n / n,
            mean_y: self.mean_y + dy * other.n / n,
            sxx: self.sxx + other.sxx + dx * dx * w,
            syy: self.syy + other.syy + dy * dy * w,
            sxy: self.sxy + other.sxy + dx * dy * w,
        }
    }

    /// Least-squares slope dy/dx, if x varies.
    pub fn slope(&self) -> Option<f64> {
        (self.n >= 2.0 && self.sxx > 0.0).then(|| self.sxy / self.sxx)
    }

    /// Coefficient of determination of the least-squares line (1 when y is constant).
    pub fn r_squared(&self) -> f64 {
        if self.sxx <= 0.0 {
            return 0.0;
        }
        if self.syy <= 0.0 {
            return 1.0;
        }
        (self.sxy * self.sxy / (self.sxx * self.syy)).clamp(0.0, 1.0)
    }
}

/// A least-squares line with an autocorrelation-aware significance statistic.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LineFit {
    /// Number of points.
    pub n: usize,
    /// Slope (y units per x unit).
    pub slope: f64,
    /// Fitted y at the last point's x.
    pub end_value: f64,
    /// Coefficient of determination.
    pub r_squared: f64,
    /// Lag-1 autocorrelation of residuals, clamped to [0, 0.99].
    pub rho: f64,
    /// Effective sample size `n (1 - ρ) / (1 + ρ)`.
    pub n_eff: f64,
    /// Slope divided by its autocorrelation-inflated standard error (+∞ for a perfect rising
    /// line, 0 when undefined).
    pub t_stat: f64,
    /// Standard error of the slope, inflated for autocorrelation (0 for a perfect line).
    pub se: f64,
    /// x distance between first and last point.
    pub span: f64,
    /// Residual sum of squares.
    pub sse: f64,
}

impl LineFit {
    /// Fits y = a + b·x to points given in x order. `None` with fewer than 3 points or constant x.
    pub fn fit(x: &[f64], y: &[f64]) -> Option<LineFit> {
        let n = x.len().min(y.len());
        if n < 3 {
            return None;
        }
        let mut m = Moments::default();
        for i in 0..n {
            m.push(x[i], y[i]);
        }
        let slope = m.slope()?;
        let intercept = m.mean_y - slope * m.mean_x;
        let mut sse = 0.0;
        let mut lag = 0.0;
        let mut prev: Option<f64> = None;
        for i in 0..n {
            let e = y[i] - (intercept + slope * x[i]);
            sse += e * e;
            if let Some(p) = prev {
                lag += p * e;
            }
            prev = Some(e);
        }
        // Residuals at rounding level mean a perfect line: no autocorrelation to speak of.
        let exact = sse <= 1e-12 * m.syy.max(f64::MIN_POSITIVE) || sse == 0.0;
        let rho = if exact {
            0.0
        } else {
            (lag / sse).clamp(0.0, 0.99)
        };
        let nf = n as f64;
        let n_eff = nf * (1.0 - rho) / (1.0 + rho);
        let se = if exact {
            0.0
        } else {
            (sse / (nf - 2.0) / m.sxx * (nf / n_eff)).sqrt()
        };
        let t_stat = if se > 0.0 {
            slope / se
        } else if slope > 0.0 {
            f64::INFINITY
        } else if slope < 0.0 {
            f64::NEG_INFINITY
        } else {
            0.0
        };
        Some(LineFit {
            n,
            slope,
            end_value: intercept + slope * x[n - 1],
            r_squared: m.r_squared(),
            rho,
            n_eff,
            t_stat,
            se,
            span: x[n - 1] - x[0],
            sse,
        })
    }

    /// Whether the slope is significantly positive at one-sided `confidence`.
    pub fn rising(&self, confidence: f64, min_effective_samples: f64) -> bool {
        self.slope > 0.0 && self.t_stat >= self.t_critical(confidence, min_effective_samples)
    }

    /// Whether the slope is significantly negative at one-sided `confidence`.
    pub fn falling(&self, confidence: f64, min_effective_samples: f64) -> bool {
        self.slope < 0.0 && -self.t_stat >= self.t_critical(confidence, min_effective_samples)
    }

    /// The t threshold for this fit (+∞ when there are too few effective samples).
    pub fn t_critical(&self, confidence: f64, min_effective_samples: f64) -> f64 {
        if self.n_eff < min_effective_samples.max(3.0) {
            return f64::INFINITY;
        }
        student_t_quantile(confidence, self.n_eff - 2.0)
    }
}

/// A least-squares parabola `y = a + b·u + c·u²` (u = x centred on its mean), used to tell
/// saturating growth (significantly concave, flattening at the end) from steady growth.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct QuadFit {
    /// Curvature coefficient (y units per x unit²).
    pub c: f64,
    /// t statistic of `c`, inflated for residual autocorrelation like [`LineFit::t_stat`].
    pub t_c: f64,
    /// Effective sample size of the parabola's residuals.
    pub n_eff: f64,
    /// Slope of the parabola at the last point.
    pub end_slope: f64,
}

impl QuadFit {
    /// Fits the parabola; `None` with fewer than 4 points or a singular system.
    pub fn fit(x: &[f64], y: &[f64]) -> Option<QuadFit> {
        let n = x.len().min(y.len());
        if n < 4 {
            return None;
        }
        let mx = x[..n].iter().sum::<f64>() / n as f64;
        let my = y[..n].iter().sum::<f64>() / n as f64;
        // Scale u to about [-1, 1] so the normal equations stay well conditioned.
        let half = (x[n - 1] - x[0]).abs() / 2.0;
        if half <= 0.0 {
            return None;
        }
        let (mut s1, mut s2, mut s3, mut s4) = (0.0, 0.0, 0.0, 0.0);
        let (mut t0, mut t1, mut t2) = (0.0, 0.0, 0.0);
        for i in 0..n {
            let u = (x[i] - mx) / half;
            let v = y[i] - my;
            let u2 = u * u;
            s1 += u;
            s2 += u2;
            s3 += u2 * u;
            s4 += u2 * u2;
            t0 += v;
            t1 += u * v;
            t2 += u2 * v;
        }
        let s0 = n as f64;
        let m = [[s0, s1, s2], [s1, s2, s3], [s2, s3, s4]];
        let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
        if det.abs() <= f64::EPSILON * s4 * s2 * s0 {
            return None;
        }
        // Cofactors of the symmetric matrix give the inverse.
        let i00 = (m[1][1] * m[2][2] - m[1][2] * m[2][1]) / det;
        let i01 = -(m[0][1] * m[2][2] - m[0][2] * m[2][1]) / det;
        let i02 = (m[0][1] * m[1][2] - m[0][2] * m[1][1]) / det;
        let i11 = (m[0][0] * m[2][2] - m[0][2] * m[2][0]) / det;
        let i12 = -(m[0][0] * m[1][2] - m[0][2] * m[1][0]) / det;
        let i22 = (m[0][0] * m[1][1] - m[0][1] * m[1][0]) / det;
        let a = i00 * t0 + i01 * t1 + i02 * t2;
        let b = i01 * t0 + i11 * t1 + i12 * t2;
        let c = i02 * t0 + i12 * t1 + i22 * t2;
        let (mut sse, mut lag, mut prev) = (0.0, 0.0, None::<f64>);
        let mut syy = 0.0;
        for i in 0..n {
            let u = (x[i] - mx) / half;
            let v = y[i] - my;
            let e = v - (a + b * u + c * u * u);
            sse += e * e;
            syy += v * v;
            if let Some(p) = prev {
                lag += p * e;
            }
            prev = Some(e);
        }
        let exact = sse <= 1e-12 * syy.max(f64::MIN_POSITIVE);
        let rho = if exact {
            0.0
        } else {
            (lag / sse).clamp(0.0, 0.99)
        };
        let nf = n as f64;
        let n_eff = nf * (1.0 - rho) / (1.0 + rho);
        let t_c = if exact {
            if c == 0.0 {
                0.0
            } else {
                c.signum() * f64::INFINITY
            }
        } else {
            let var_c = sse / (nf - 3.0) * i22 * (nf / n_eff);
            c / var_c.sqrt()
        };
        let u_end = (x[n - 1] - mx) / half;
        Some(QuadFit {
            c: c / (half * half),
            t_c,
            n_eff,
            end_slope: (b + 2.0 * c * u_end) / half,
        })
    }

    /// Whether the curve is significantly concave (growth slowing) at one-sided `confidence`.
    pub fn concave(&self, confidence: f64, min_effective_samples: f64) -> bool {
        self.c < 0.0
            && self.n_eff >= min_effective_samples.max(4.0)
            && -self.t_c >= student_t_quantile(confidence, self.n_eff - 3.0)
    }

    /// Whether the curvature is significantly positive (bending up: an onset inside the fit).
    pub fn convex(&self, confidence: f64, min_effective_samples: f64) -> bool {
        self.c > 0.0
            && self.n_eff >= min_effective_samples.max(4.0)
            && self.t_c >= student_t_quantile(confidence, self.n_eff - 3.0)
    }
}

/// Relative RMS variation of the load below which it counts as constant in [`PlaneFit`].
const CONSTANT_LOAD: f64 = 1e-3;

/// A least-squares plane `y = a + b·r + c·x` with two regressors, used to separate growth over
/// time (`c`, at constant load) from memory that follows load (`b`, r = request rate).
///
/// Like [`LineFit`], the t statistic of `c` discounts lag-1 autocorrelation of the residuals:
/// memory that follows load with a lag or a hysteresis (an allocator that keeps the morning's
/// peak) leaves long runs of same-signed residuals that a plain t would read as growth.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PlaneFit {
    /// Number of points.
    pub n: usize,
    /// Coefficient of `r` (y units per r unit).
    pub b: f64,
    /// Coefficient of `x` (y units per x unit): the growth at constant `r`.
    pub c: f64,
    /// t statistic of `c`, inflated for residual autocorrelation (+∞ for an exact rising fit,
    /// 0 when undefined).
    pub t_c: f64,
    /// Effective sample size of the residuals.
    pub n_eff: f64,
    /// The load was (practically) constant: `b = 0` and `c` is the line's slope, so the load
    /// explains nothing.
    pub constant_load: bool,
}

impl PlaneFit {
    /// Fits the plane to points given in x order. `None` with fewer than 5 points, constant x,
    /// or collinear regressors. A constant `r` (relative RMS variation below 0.1 %) gives
    /// `b = 0` and the line's slope as `c`.
    pub fn fit(x: &[f64], r: &[f64], y: &[f64]) -> Option<PlaneFit> {
        let n = x.len().min(r.len()).min(y.len());
        if n < 5 {
            return None;
        }
        let nf = n as f64;
        let mean = |v: &[f64]| v[..n].iter().sum::<f64>() / nf;
        let (mx, mr, my) = (mean(x), mean(r), mean(y));
        let (mut sxx, mut srr, mut sxr, mut sxy, mut sry, mut syy) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
        for i in 0..n {
            let (dx, dr, dy) = (x[i] - mx, r[i] - mr, y[i] - my);
            sxx += dx * dx;
            srr += dr * dr;
            sxr += dx * dr;
            sxy += dx * dy;
            sry += dr * dy;
            syy += dy * dy;
        }
        if sxx <= 0.0 {
            return None;
        }
        // A (practically) constant load explains nothing: the plane is the line in x.
        let constant_load = srr <= (CONSTANT_LOAD * mr).powi(2) * nf;
        let (b, c, factor) = if constant_load {
            (0.0, sxy / sxx, 1.0 / sxx)
        } else {
            let det = sxx * srr - sxr * sxr;
            // Collinear regressors: the split between load and time is undefined.
            if det <= 1e-9 * sxx * srr {
                return None;
            }
            (
                (sxx * sry - sxr * sxy) / det,
                (srr * sxy - sxr * sry) / det,
                srr / det,
            )
        };
        let (mut sse, mut lag, mut prev) = (0.0, 0.0, None::<f64>);
        for i in 0..n {
            let e = (y[i] - my) - b * (r[i] - mr) - c * (x[i] - mx);
            sse += e * e;
            if let Some(p) = prev {
                lag += p * e;
            }
            prev = Some(e);
        }
        let exact = sse <= 1e-12 * syy.max(f64::MIN_POSITIVE);
        let rho = if exact {
            0.0
        } else {
            (lag / sse).clamp(0.0, 0.99)
        };
        let n_eff = nf * (1.0 - rho) / (1.0 + rho);
        let t_c = if exact {
            if c > 0.0 {
                f64::INFINITY
            } else if c < 0.0 {
                f64::NEG_INFINITY
            } else {
                0.0
            }
        } else {
            c / (sse / (nf - 3.0) * factor * (nf / n_eff)).sqrt()
        };
        Some(PlaneFit {
            n,
            b,
            c,
            t_c,
            n_eff,
            constant_load,
        })
    }

    /// Whether `c` (growth at constant load) is significantly positive at one-sided
    /// `confidence`, with at least `min_effective_samples` effective samples.
    pub fn rising(&self, confidence: f64, min_effective_samples: f64) -> bool {
        self.c > 0.0
            && self.n_eff >= min_effective_samples.max(4.0)
            && self.t_c >= student_t_quantile(confidence, self.n_eff - 3.0)
    }
}

/// Standard normal quantile (Acklam's rational approximation, relative error < 1.2e-9).
pub fn normal_quantile(p: f64) -> f64 {
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    const P_LOW: f64 = 0.024_25;
    if p < P_LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p <= 1.0 - P_LOW {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    }
}

/// Student-t quantile for probability `p` and (real) degrees of freedom `df`.
///
/// Exact for df = 1 and 2, Cornish–Fisher expansion (Abramowitz & Stegun 26.7.5) above 2
/// (within 0.5 % at df = 3, p = 0.99), linear in df between 1 and 2. Below 1: +∞.
pub fn student_t_quantile(p: f64, df: f64) -> f64 {
    if df.is_nan() || df < 1.0 {
        return f64::INFINITY;
    }
    let exact1 = (std::f64::consts::PI * (p - 0.5)).tan();
    let exact2 = (2.0 * p - 1.0) / (2.0 * p * (1.0 - p)).sqrt();
    if df < 2.0 {
        return exact1 + (exact2 - exact1) * (df - 1.0);
    }
    if df == 2.0 {
        return exact2;
    }
    let z = normal_quantile(p);
    let z2 = z * z;
    let g1 = (z2 + 1.0) * z / 4.0;
    let g2 = ((5.0 * z2 + 16.0) * z2 + 3.0) * z / 96.0;
    let g3 = (((3.0 * z2 + 19.0) * z2 + 17.0) * z2 - 15.0) * z / 384.0;
    let g4 = ((((79.0 * z2 + 776.0) * z2 + 1482.0) * z2 - 1920.0) * z2 - 945.0) * z / 92160.0;
    let t = z + g1 / df + g2 / (df * df) + g3 / (df * df * df) + g4 / (df * df * df * df);
    if df < 3.0 {
        // Blend towards the exact df = 2 value so the function is continuous.
        let w = df - 2.0;
        return exact2 * (1.0 - w) + t * w;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1.0)
    }

    #[test]
    fn merged_moments_equal_batch() {
        let pts: Vec<(f64, f64)> = (0..50)
            .map(|i| {
                let x = 1.7e9 + f64::from(i) * 10.0;
                (x, 2e8 + f64::from(i * i % 17) * 1e5)
            })
            .collect();
        let mut batch = Moments::default();
        for &(x, y) in &pts {
            batch.push(x, y);
        }
        let mut merged = Moments::default();
        for chunk in pts.chunks(7) {
            let mut part = Moments::default();
            for &(x, y) in chunk {
                part.push(x, y);
            }
            merged = merged.merge(&part);
        }
        assert_eq!(merged.n, batch.n);
        assert!(close(merged.mean_x, batch.mean_x, 1e-12));
        assert!(close(merged.mean_y, batch.mean_y, 1e-12));
        assert!(close(merged.sxx, batch.sxx, 1e-9));
        assert!(close(merged.syy, batch.syy, 1e-9));
        assert!(close(merged.sxy, batch.sxy, 1e-9));
        let merged_slope = merged.slope().unwrap_or(f64::NAN);
        let batch_slope = batch.slope().unwrap_or(f64::NAN);
        assert!(close(merged_slope, batch_slope, 1e-9));
    }

    #[test]
    fn exact_line_slope_and_r_squared() {
        let x: Vec<f64> = (0..10).map(f64::from).collect();
        let y: Vec<f64> = x.iter().map(|x| 3.0 * x + 5.0).collect();
        let f = LineFit::fit(&x, &y).unwrap_or_default();
        assert_eq!(f.slope, 3.0);
        assert_eq!(f.r_squared, 1.0);
        assert_eq!(f.end_value, 32.0);
        assert_eq!(f.t_stat, f64::INFINITY);
        assert_eq!(f.n_eff, 10.0);
        assert!(f.rising(0.99, 4.0));
    }

    #[test]
    fn known_noisy_line() {
        // y = 2x + e with e = +1, -1 alternating: slope and r² have closed forms.
        let x: Vec<f64> = (0..4).map(f64::from).collect();
        let y = [1.0, 1.0, 5.0, 5.0];
        let f = LineFit::fit(&x, &y).unwrap_or_default();
        // sxx = 5, sxy = 8 → slope 1.6; syy = 16 → r² = 64 / 80 = 0.8.
        assert!(close(f.slope, 1.6, 1e-12));
        assert!(close(f.r_squared, 0.8, 1e-12));
    }

    #[test]
    fn autocorrelation_lowers_effective_sample_size() {
        let x: Vec<f64> = (0..24).map(f64::from).collect();
        // Alternating noise: independent-looking residuals.
        let y_white: Vec<f64> = x
            .iter()
            .enumerate()
            .map(|(i, x)| x + if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        // A slow wave: long runs of same-signed residuals.
        let y_wave: Vec<f64> = x
            .iter()
            .map(|x| x + 3.0 * (x * std::f64::consts::PI / 12.0).sin())
            .collect();
        let white = LineFit::fit(&x, &y_white).unwrap_or_default();
        let wave = LineFit::fit(&x, &y_wave).unwrap_or_default();
        assert_eq!(white.rho, 0.0);
        assert_eq!(white.n_eff, 24.0);
        assert!(wave.rho > 0.5, "rho {}", wave.rho);
        assert!(wave.n_eff < 8.0, "n_eff {}", wave.n_eff);
        assert!(wave.t_stat < white.t_stat);
    }

    #[test]
    fn parabola_recovers_curvature_and_end_slope() {
        let x: Vec<f64> = (0..9).map(f64::from).collect();
        let y: Vec<f64> = x.iter().map(|x| 1.0 + 4.0 * x - 0.25 * x * x).collect();
        let q = QuadFit::fit(&x, &y).unwrap_or_default();
        assert!(close(q.c, -0.25, 1e-9), "{q:?}");
        assert!(close(q.end_slope, 0.0, 1e-9), "{q:?}");
        assert!(q.concave(0.99, 3.0));
        let line: Vec<f64> = x.iter().map(|x| 2.0 * x).collect();
        let q = QuadFit::fit(&x, &line).unwrap_or_default();
        assert!(!q.concave(0.99, 3.0), "{q:?}");
    }

    #[test]
    fn too_few_points_do_not_fit() {
        assert_eq!(LineFit::fit(&[0.0, 1.0], &[0.0, 1.0]), None);
        assert_eq!(LineFit::fit(&[1.0, 1.0, 1.0], &[0.0, 1.0, 2.0]), None);
    }

    #[test]
    fn quantiles_match_tables() {
        assert!(close(normal_quantile(0.975), 1.959_964, 1e-6));
        assert!(close(normal_quantile(0.01), -2.326_348, 1e-6));
        assert!(close(student_t_quantile(0.975, 1.0), 12.706_2, 1e-4));
        assert!(close(student_t_quantile(0.99, 2.0), 6.964_6, 1e-4));
        assert!(close(student_t_quantile(0.99, 3.0), 4.540_7, 5e-3));
        assert!(close(student_t_quantile(0.99, 10.0), 2.763_8, 1e-3));
        assert!(close(student_t_quantile(0.95, 30.0), 1.697_3, 1e-3));
        assert_eq!(student_t_quantile(0.99, 0.5), f64::INFINITY);
    }

    #[test]
    fn plane_separates_load_from_time() {
        // y = 5 + 2·r + 0·x exactly, with r varying independently of x.
        let x: Vec<f64> = (0..10).map(f64::from).collect();
        let r: Vec<f64> = (0..10).map(|i| f64::from((i * 7) % 5)).collect();
        let y: Vec<f64> = r.iter().map(|r| 5.0 + 2.0 * r).collect();
        let p = PlaneFit::fit(&x, &r, &y).unwrap_or_default();
        assert!(close(p.b, 2.0, 1e-9) && close(p.c, 0.0, 1e-9), "{p:?}");
        assert!(!p.rising(0.99, 3.0));
        // Growth at constant load.
        let y2: Vec<f64> = (0..10).map(|i| y[i] + 0.5 * x[i]).collect();
        let p2 = PlaneFit::fit(&x, &r, &y2).unwrap_or_default();
        assert!(close(p2.c, 0.5, 1e-9), "{p2:?}");
        assert!(p2.rising(0.99, 3.0));
    }

    #[test]
    fn collinear_regressors_do_not_fit() {
        let x: Vec<f64> = (0..10).map(f64::from).collect();
        let r: Vec<f64> = x.iter().map(|x| 3.0 * x + 1.0).collect();
        assert_eq!(PlaneFit::fit(&x, &r, &x), None);
        assert_eq!(PlaneFit::fit(&x[..4], &r[..4], &x[..4]), None);
    }

    #[test]
    fn constant_load_leaves_the_line() {
        let x: Vec<f64> = (0..10).map(f64::from).collect();
        let r = vec![100.0; 10];
        let y: Vec<f64> = (0..10)
            .map(|i| 7.0 + 0.5 * x[i] + if i % 2 == 0 { 0.3 } else { -0.3 })
            .collect();
        let p = PlaneFit::fit(&x, &r, &y).unwrap_or_default();
        let line = LineFit::fit(&x, &y).unwrap_or_default();
        assert!(close(p.c, line.slope, 1e-12) && p.b == 0.0, "{p:?}");
        assert!(p.constant_load);
        assert!(p.rising(0.99, 3.0));
    }
}
